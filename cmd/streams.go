package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

func newStreamsCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "streams [GLOB]",
		Short: "List streams with their version and last event",
		Long: `List the streams of the store, sorted by name: name, version, last event
type and time. A table on a terminal, tab-separated rows when piped; -o json
prints {"stream","version","last_position","last_type","last_time"} per line.`,
		Example: `  evt streams
  evt streams 'account-*'
  evt streams -o json | jq -r 'select(.version > 10) | .stream'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			sel, err := codec.ParseSelection(pattern)
			if err != nil {
				return usageErrorf("%w", err)
			}
			return runStreams(g, sel)
		},
	}
}

func runStreams(g *globalOptions, sel codec.Selection) error {
	p, err := g.printer()
	if err != nil {
		return err
	}
	s, err := g.openStore(false)
	if err != nil {
		return err
	}
	defer s.Close()
	var streams []log.StreamInfo
	if name, ok := sel.Stream(); ok {
		info, err := s.Head(name)
		if err != nil {
			return err
		}
		streams = []log.StreamInfo{info}
	} else if streams, err = selectedStreams(s, sel); err != nil {
		return err
	}
	if sel.All() {
		p.SetEmpty("No streams.")
	} else {
		p.SetEmpty(fmt.Sprintf("No streams match '%s'.", sel))
	}
	for _, info := range streams {
		err := p.Row([]output.Field{
			{Key: "stream", Value: info.Stream},
			{Key: "version", Value: info.Version},
			{Key: "last_position", Value: info.Last},
			{Key: "last_type", Value: info.LastType},
			{Key: "last_time", Value: info.LastTime},
		})
		if err != nil {
			return err
		}
	}
	return p.Flush()
}

// selectedStreams returns the heads of the streams sel picks. A selection
// with a literal prefix ('account-7*') is looked up in the store's name
// index when it has one, so that the cost follows the streams that match,
// not the store.
func selectedStreams(s log.Store, sel codec.Selection) ([]log.StreamInfo, error) {
	if ps, ok := s.(log.PrefixStreamer); ok && sel.Prefix() != "" {
		streams, err := ps.StreamsWithPrefix(sel.Prefix(), sel.Match)
		if !errors.Is(err, log.ErrUnsupported) {
			return streams, err
		}
	}
	return s.Streams(sel.Match)
}
