package cmd

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/log"
)

func newDeleteCmd(g *globalOptions) *cobra.Command {
	var expect string
	cmd := &cobra.Command{
		Use:   "delete STREAM",
		Short: "Delete a stream (a tombstone)",
		Long: `Delete STREAM: append a tombstone that removes every event of the stream.
From then on the stream reads as not found (exit 4), its events are gone
from every read at once, and evt compact reclaims their space.

The stream's versions are never given again: an append with --expect none
fails (exit 3), and a plain append continues after the deleted version,
which brings the stream back with only the new events. --expect checks the
stream's version first, like an append's.`,
		Example: `  evt delete account-8
  evt delete order-42 --expect 3
  evt delete order-42 --expect 2   # the stream moved on: exit 3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := parseCutExpect(expect)
			if err != nil {
				return err
			}
			return runCut(cmd.Context(), g, "deleted", func(ctx context.Context, s log.Store) (log.Result, error) {
				return s.Delete(ctx, args[0], e)
			})
		},
	}
	cmd.Flags().StringVar(&expect, "expect", "", "expected version of the stream: N or exists")
	return cmd
}

func newTruncateCmd(g *globalOptions) *cobra.Command {
	var expect string
	var before uint64
	cmd := &cobra.Command{
		Use:   "truncate STREAM --before VERSION",
		Short: "Remove a stream's events before a version",
		Long: `Remove the events of STREAM before version VERSION: reads of the stream
start at VERSION at once, and evt compact reclaims the space. Versions do
not change. Truncating below an earlier truncation changes nothing;
--before one past the last version removes every event (the stream then
reads as not found, and its next append continues its versions).`,
		Example: `  evt truncate order-42 --before 3
  evt truncate order-42 --before 2 --expect 3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("before") {
				return usageErrorf("truncate: --before VERSION is required")
			}
			if before == 0 {
				return usageErrorf("truncate: --before must be a version, 1 or more")
			}
			e, err := parseCutExpect(expect)
			if err != nil {
				return err
			}
			return runCut(cmd.Context(), g, "truncated", func(ctx context.Context, s log.Store) (log.Result, error) {
				return s.Truncate(ctx, args[0], before, e)
			})
		},
	}
	cmd.Flags().Uint64Var(&before, "before", 0, "remove the versions before this one")
	cmd.Flags().StringVar(&expect, "expect", "", "expected version of the stream: N or exists")
	return cmd
}

func parseCutExpect(s string) (log.Expectation, error) {
	if s == "" {
		return log.Expectation{}, nil
	}
	e, err := log.ParseExpectation(s)
	if err != nil {
		return e, usageErrorf("invalid --expect: %w", err)
	}
	return e, nil
}

// runCut runs a delete or truncate and prints what it removed: on a
// terminal or piped "STREAM deleted through version N", else a row of
// {"stream","action","through_version","position"} (position of the
// marker, 0 if nothing changed).
func runCut(ctx context.Context, g *globalOptions, action string, cut func(context.Context, log.Store) (log.Result, error)) error {
	p, err := g.printer()
	if err != nil {
		return err
	}
	s, err := openExisting(g)
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := cut(ctx, s)
	if err != nil {
		return err
	}
	if p.Format() == output.FormatAuto {
		note := ""
		if res.Duplicate {
			note = " (already)"
		}
		_, err := fmt.Fprintf(g.IO.Out, "%s %s through version %s%s\n", res.Stream, action, strconv.FormatUint(res.Version, 10), note)
		return err
	}
	if err := p.Row([]output.Field{
		{Key: "stream", Value: res.Stream},
		{Key: "action", Value: action},
		{Key: "through_version", Value: res.Version},
		{Key: "position", Value: res.Position},
	}); err != nil {
		return err
	}
	return p.Flush()
}
