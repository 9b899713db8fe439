package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newGroupRetryCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "retry NAME [POSITION...]",
		Short: "Re-queue parked events (all, or the positions given)",
		Long: `Re-queue parked events of consumer group NAME, all of them or the
positions given, so that its members get them again. It prints how many
were re-queued; a position that is not parked is left alone.`,
		Example: `  evt group retry billing
  evt group retry billing 5`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			positions, err := parsePositions(args[1:])
			if err != nil {
				return err
			}
			_, grp, done, err := g.openGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer done()
			n, err := grp.Retry(cmd.Context(), positions...)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.IO.Out, "re-queued %d parked events of %s\n", n, args[0])
			return nil
		},
	}
}
