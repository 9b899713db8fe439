package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/codec"
)

func newGroupResetCmd(g *globalOptions) *cobra.Command {
	var to string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "reset NAME --to CURSOR",
		Short: "Move a group to another position (replay or skip events)",
		Long: `Move consumer group NAME to CURSOR (evt help cursors): back, to deliver
events again, or forward, to skip them. It prints how many events of the
group's selection that redelivers or skips; --dry-run prints only that
and changes nothing. Leases are dropped (their events are delivered
again from the new position); parked events stay parked.`,
		Example: `  evt group reset billing --to start --dry-run
  evt group reset billing --to @2026-11-25T10:00:00Z`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageErrorf("reset needs --to CURSOR")
			}
			c, err := codec.ParseCursor(to, time.Now())
			if err != nil {
				return usageErrorf("--to: %w", err)
			}
			ctx := cmd.Context()
			s, grp, done, err := g.openGroup(ctx, args[0])
			if err != nil {
				return err
			}
			defer done()
			cfg := grp.Config()
			f, err := newEventFilter(selectionPattern(cfg.Selection), cfg.Types)
			if err != nil {
				return err
			}
			pos, err := cursorPosition(ctx, s, f, c)
			if err != nil {
				return err
			}
			res, err := grp.Reset(ctx, pos, dryRun)
			if err != nil {
				return err
			}
			verb := "redelivered"
			if res.To > res.From {
				verb = "skipped"
			}
			if dryRun {
				fmt.Fprintf(g.IO.Out, "would move %s from %d to %d: %d events %s\n", args[0], res.From, res.To, res.Events, verb)
				return nil
			}
			fmt.Fprintf(g.IO.Out, "moved %s from %d to %d: %d events %s\n", args[0], res.From, res.To, res.Events, verb)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the new position: a cursor")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would change, change nothing")
	return cmd
}
