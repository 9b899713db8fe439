package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// maxPartitions is the most lanes a group's per-stream ordering may have:
// the nats store's subject buckets (natsjs.Buckets, which cmd does not
// link).
const maxPartitions = 256

func newGroupCreateCmd(g *globalOptions) *cobra.Command {
	var from, ordering string
	var ackWait time.Duration
	var maxDeliver, partitions int
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
out in any order, for more parallel work. On a nats store, --partitions
sets how many independent lanes per-stream ordering uses (a stream
always maps to one lane; default 16, at most 256); the local store orders
each stream on its own and ignores it.`,
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
			if partitions < 0 || partitions > maxPartitions {
				return usageErrorf("--partitions: want 1 to %d (0: the store's default), not %d", maxPartitions, partitions)
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
				MaxDeliver: maxDeliver, Ordering: ordering, Partitions: partitions, Created: time.Now().UTC()}
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
	fl.IntVar(&partitions, "partitions", 0, "lanes of per-stream ordering on a nats store (default 16)")
	_ = cmd.RegisterFlagCompletionFunc("ordering", cobra.FixedCompletions([]string{"stream", "none"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
