package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newGroupRmCmd(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a group and its state",
		Long: `Remove consumer group NAME: its configuration, committed position,
leases and parked events. The events themselves stay in the log. Exits 4
if there is no such group. A group with live members (evt consume) is
not removed (exit 1) unless --force; its members then stop, saying so.`,
		Example: `  evt group rm billing`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, grp, done, err := g.openGroup(ctx, args[0])
			if err != nil {
				return err
			}
			defer done()
			st, err := grp.Status(ctx)
			if err != nil {
				return err
			}
			if m := st.Members; len(m) > 0 && !force {
				return fmt.Errorf("group %s has %d live members (PID %s): stop them first, or --force", args[0], len(m), strings.Join(m, ", "))
			}
			return s.RemoveGroup(ctx, args[0])
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove the group even while members consume it")
	return cmd
}
