package cmd

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/log"
)

func newCompactCmd(g *globalOptions) *cobra.Command {
	var auto string
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Reclaim the space of expired, deleted and truncated events",
		Long: `Rewrite the sealed segments that hold events removed by retention
rules, evt delete or evt truncate, and delete the oldest segments once
nothing in them is kept; the segment appends go to is sealed first when
at least half of it is removed. The id index shrinks with the events.
Positions, versions, ids and times of the events
that stay never change. Appends, tails, folds and consumers go on while it
runs; a reader that has a segment open keeps reading the old file. A crash
at any point leaves a store that opens and verifies; the next compaction
cleans up after it. One compaction runs at a time, and none while evt
verify or evt repair runs: it waits for them up to --lock-timeout.

Compaction keeps the newest record of every stream and the marker of each
delete or truncate, though no read shows them, so the stream's versions
survive. Fold snapshots taken before a delete or truncate are removed.
A progress bar goes to stderr on a terminal.

On a nats store, delete and truncate purge at once, and compaction is
the retention sweep: for each stream a max-age or max-count rule limits,
it purges the messages below the first one a read still shows, never the
stream's newest (its version). There are no segments: the report's
segments, rewritten and removed are null (-o json), bytes are the
JetStream stream's.

--auto on makes every append that seals a segment start a compaction in
the background (a detached evt compact; one that finds another running
exits at once); --auto off stops that. Neither compacts now.`,
		Example: `  evt compact
  evt compact -o json
  evt compact --auto on`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			if auto != "" && auto != "on" && auto != "off" {
				return usageErrorf("invalid --auto %q (want on or off)", auto)
			}
			s, err := openExisting(g)
			if err != nil {
				return err
			}
			defer s.Close()
			if auto != "" {
				if _, ok := s.(log.Directory); !ok {
					// Background compaction is an appender's re-exec
					// when it seals a segment: a server has none.
					return unsupportedBy(s, "compact --auto")
				}
				return s.UpdateRetention(func(r *log.Retention) error {
					r.AutoCompact = auto == "on"
					return nil
				})
			}
			bar := newProgress(g.IO, "compact")
			c, ok := s.(log.Compacter)
			if !ok {
				return fmt.Errorf("compact: %w", log.ErrUnsupported)
			}
			rep, err := c.Compact(cmd.Context(), bar.update)
			bar.done()
			if err != nil {
				return err
			}
			return printCompactReport(g, p, rep)
		},
	}
	cmd.Flags().StringVar(&auto, "auto", "", "on: compact in the background whenever an append seals a segment; off: stop")
	return cmd
}

// autoCompact starts a detached evt compact when an append of this
// process sealed a segment and the store has --auto on. Best effort: the
// append already succeeded, and a compaction that finds another running
// exits at once.
func autoCompact(g *globalOptions, store log.Store) {
	s, ok := store.(log.Directory)
	if !ok || !s.Sealed() {
		return
	}
	if r, err := store.Retention(); err != nil || !r.AutoCompact {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	// A short lock timeout: when a compaction already runs, this one has
	// nothing to add and gives up rather than queue behind it.
	c := exec.Command(exe, "--dir", s.Dir(), "--lock-timeout", "1s", "compact", "-o", "json")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this process and its terminal
	if c.Start() == nil {
		c.Process.Release()
	}
}

func printCompactReport(g *globalOptions, p *output.Printer, rep log.CompactReport) error {
	// A store without segments (nats) reports none: null in JSON.
	segs := rep.Segments >= 0
	if p.Format() == output.FormatAuto {
		what := fmt.Sprintf("%d of %d sealed segments rewritten, %d removed; ", rep.Rewritten, rep.Segments, rep.Removed)
		if !segs {
			what = ""
		}
		_, err := fmt.Fprintf(g.IO.Out, "compacted: %d events dropped; %s%s → %s (%s reclaimed)\n",
			rep.Dropped, what, humanBytes(rep.BytesBefore), humanBytes(rep.BytesAfter), humanBytes(rep.BytesBefore-rep.BytesAfter))
		return err
	}
	count := func(key string, n int) output.Field {
		if !segs {
			return output.Field{Key: key, Value: nil, Text: "-"}
		}
		return output.Field{Key: key, Value: n}
	}
	if err := p.Row([]output.Field{
		{Key: "dropped", Value: rep.Dropped},
		count("segments", rep.Segments),
		count("rewritten", rep.Rewritten),
		count("removed", rep.Removed),
		{Key: "bytes_before", Value: uint64(rep.BytesBefore)},
		{Key: "bytes_after", Value: uint64(rep.BytesAfter)},
		{Key: "snapshots_removed", Value: rep.Snapshots},
	}); err != nil {
		return err
	}
	return p.Flush()
}
