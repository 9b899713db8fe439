package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

func newGroupCreateCmd(g *globalOptions) *cobra.Command {
	var from, ordering string
	var ackWait time.Duration
	var maxDeliver int
	var types []string
	cmd := &cobra.Command{
		Use:   "create NAME [SELECTION]",
		Short: "Create a consumer group",
		Long: `Create consumer group NAME over SELECTION (a stream, a glob, or nothing
for every stream), keeping only events of the --type types if given.

The group starts at --from: end (the default) delivers only events
appended from now on, start the whole log, or any other cursor (evt help
cursors). --ack-wait is how long a member may hold an event before it is
delivered again, --max-deliver how many deliveries an event gets before
it is parked, and --ordering stream (the default) never hands out an
event while an earlier event of its stream is unacked; none hands events
out in any order, for more parallel work.`,
		Example: `  evt group create billing 'order-*' --from start
  evt group create mailer --ack-wait 1m --max-deliver 3 --ordering none`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := log.ValidateGroupName(args[0]); err != nil {
				return usageErrorf("%w", err)
			}
			pattern := ""
			if len(args) == 2 {
				pattern = args[1]
			}
			f, err := newEventFilter(pattern, types)
			if err != nil {
				return err
			}
			if ordering != "stream" && ordering != "none" {
				return usageErrorf("--ordering: want stream or none, not %q", ordering)
			}
			if ackWait <= 0 || maxDeliver < 1 {
				return usageErrorf("--ack-wait must be positive and --max-deliver at least 1")
			}
			c, err := codec.ParseCursor(from, time.Now())
			if err != nil {
				return usageErrorf("--from: %w", err)
			}
			s, err := g.openStore(true)
			if err != nil {
				return err
			}
			defer s.Close()
			start, err := cursorPosition(cmd.Context(), s, f, c)
			if err != nil {
				return err
			}
			cfg := log.GroupConfig{Name: args[0], Selection: f.sel.String(), Types: types, AckWait: ackWait,
				MaxDeliver: maxDeliver, Ordering: ordering, Created: time.Now().UTC()}
			if err := s.CreateGroup(cmd.Context(), cfg, start); err != nil {
				return err
			}
			fmt.Fprintf(g.IO.Out, "created group %s at position %d\n", args[0], start)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "end", "where the group starts: a cursor")
	durationVar(fl, &ackWait, "ack-wait", 30*time.Second, true, "redeliver an event not acked within this time")
	fl.IntVar(&maxDeliver, "max-deliver", 5, "park an event after this many deliveries")
	fl.StringVar(&ordering, "ordering", "stream", "stream: never hand out an event while an earlier one of its stream is unacked; none")
	fl.StringArrayVar(&types, "type", nil, "only events of this type (repeatable)")
	_ = cmd.RegisterFlagCompletionFunc("ordering", cobra.FixedCompletions([]string{"stream", "none"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
