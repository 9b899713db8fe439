package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
)

func newGroupShowCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show one group: its settings, position, lag and leases",
		Long: `Show consumer group NAME: its selection, committed position, lag,
pending (leased) and parked events, members, and its settings (ack wait,
max deliver, ordering, when it was created), one "key: value" per line;
-o json and the other formats print them as one document. A group whose
position lies before the first retained event says where consumption
resumes. Exits 4 if there is no such group.`,
		Example: `  evt group show billing
  evt group show billing -o json --jq .lag`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			s, grp, done, err := g.openGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer done()
			row, st, err := groupRow(cmd.Context(), grp)
			if err != nil {
				return err
			}
			first, _, err := s.Bounds()
			if err != nil {
				return err
			}
			cfg := grp.Config()
			row = append(row,
				output.Field{Key: "ack_wait", Value: cfg.AckWait.String()},
				output.Field{Key: "max_deliver", Value: cfg.MaxDeliver},
				output.Field{Key: "ordering", Value: cfg.Ordering},
				output.Field{Key: "created", Value: cfg.Created},
				output.Field{Key: "live_members", Value: st.Members, Text: fmt.Sprint(st.Members)},
			)
			if st.Committed < first {
				row = append(row, output.Field{Key: "note", Value: fmt.Sprintf("position %d is before the first retained event; consumption resumes at %d", st.Committed, first)})
			}
			if p.Format() == output.FormatAuto {
				for _, f := range row {
					text := f.Text
					if text == "" {
						text = fmt.Sprint(f.Value)
						if t, ok := f.Value.(time.Time); ok {
							text = t.Format(codec.TimeFormat)
						}
					}
					fmt.Fprintf(g.IO.Out, "%-13s %s\n", f.Key+":", text)
				}
				return nil
			}
			if err := p.Row(row); err != nil {
				return err
			}
			return p.Flush()
		},
	}
}
