package cmd

import (
	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
)

func newGroupParkedCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "parked NAME",
		Short: "List a group's parked events with reason and attempts",
		Long: `List the events consumer group NAME gave up on after --max-deliver
deliveries: position, stream, type, attempts, the last error and when it
was parked. "evt group retry NAME" delivers them again.`,
		Example: `  evt group parked billing
  evt group parked billing -o json --jq .position`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			_, grp, done, err := g.openGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer done()
			parked, err := grp.Parked(cmd.Context())
			if err != nil {
				return err
			}
			for _, pk := range parked {
				err := p.Row([]output.Field{
					{Key: "position", Value: pk.Position}, {Key: "stream", Value: pk.Stream}, {Key: "type", Value: pk.Type},
					{Key: "attempts", Value: pk.Deliveries}, {Key: "reason", Value: pk.Reason}, {Key: "parked_at", Value: pk.At},
				})
				if err != nil {
					return err
				}
			}
			return p.Flush()
		},
	}
}
