package cmd

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

func newGroupCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Manage consumer groups: named cursors shared by consumers",
		Long: `A consumer group is a named, shared cursor over a selection of the log.
Any number of "evt consume NAME" processes share its work: each event goes
to one member at a time, at least once.`,
	}
	cmd.AddCommand(newGroupCreateCmd(g), newGroupLsCmd(g), newGroupShowCmd(g), newGroupResetCmd(g),
		newGroupRmCmd(g), newGroupParkedCmd(g), newGroupRetryCmd(g))
	return cmd
}

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
  evt group create mailer --from end --ack-wait 1m --max-deliver 3 --ordering none`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := local.ValidateGroupName(args[0]); err != nil {
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
			s, err := g.openLocal(true)
			if err != nil {
				return err
			}
			defer s.Close()
			start, err := cursorPosition(s, f, c)
			if err != nil {
				return err
			}
			cfg := log.GroupConfig{Name: args[0], Selection: f.sel.String(), Types: types, AckWait: ackWait,
				MaxDeliver: maxDeliver, Ordering: ordering, Created: time.Now().UTC()}
			if err := s.CreateGroup(cfg, start); err != nil {
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

// cursorPosition resolves a cursor to the first position it names, for a
// selection (a group's start, a reset).
func cursorPosition(s *local.Store, f eventFilter, c codec.Cursor) (uint64, error) {
	first, next, err := s.Bounds()
	if err != nil {
		return 0, err
	}
	switch c.Kind {
	case codec.CursorStart:
		return first, nil
	case codec.CursorEnd:
		return next, nil
	case codec.CursorPosition:
		if c.N > next {
			// Past the end it would skip, without a word, every event
			// appended until the log got there.
			return 0, fmt.Errorf("position %d is past the end of the log (the next event will be %d; use end to start there)", c.N, next)
		}
		return max(c.N, first), nil
	case codec.CursorTime:
		return s.PositionAt(c.Time)
	case codec.CursorStored:
		return 0, usageErrorf("stored is a group's own position; give another cursor")
	}
	// +N, -N: the position of that event of the selection.
	r := &eventReader{s: s, f: f}
	at := next
	found := func(rec *codec.Record) error { at = rec.Position; return errStop }
	if c.Kind == codec.CursorAfterHead {
		err = r.readFrom(c, found)
	} else {
		err = r.lastN(c.N, found)
	}
	return at, err
}

// groupRow is one group's summary, as ls and show print it.
func groupRow(s *local.Store, name string) ([]output.Field, error) {
	grp, err := s.OpenGroup(name)
	if err != nil {
		return nil, err
	}
	defer grp.Close()
	st, err := grp.State()
	if err != nil {
		return nil, err
	}
	f, err := newEventFilter(selectionPattern(grp.Config.Selection), grp.Config.Types)
	if err != nil {
		return nil, err
	}
	lag, lagTime, err := groupLag(s, f, st)
	if err != nil {
		return nil, err
	}
	leased := 0
	for _, l := range st.Pending {
		if l.Member != "" {
			leased++
		}
	}
	return []output.Field{
		{Key: "name", Value: name},
		{Key: "selection", Value: grp.Config.Selection},
		{Key: "position", Value: st.Committed},
		{Key: "lag", Value: lag},
		{Key: "lag_seconds", Value: lagTime.Seconds(), Text: lagTime.Round(time.Millisecond).String()},
		{Key: "pending", Value: leased},
		{Key: "parked", Value: len(st.Parked)},
		{Key: "members", Value: len(grp.Members())},
	}, nil
}

func selectionPattern(sel string) string {
	if sel == "*" {
		return ""
	}
	return sel
}

// groupLag counts the selected events not yet done and how long ago the
// oldest of them was appended (0 when there is none): a group stuck on
// an old event shows its age even when nothing new arrives.
func groupLag(s *local.Store, f eventFilter, st *local.GroupState) (uint64, time.Duration, error) {
	var n uint64
	var oldest time.Time
	_, err := s.Scan(st.Committed, func(rec *codec.Record) error {
		if !f.match(rec) {
			return nil
		}
		if _, pending := st.Pending[rec.Position]; rec.Position >= st.Next || pending {
			n++
			if oldest.IsZero() {
				oldest = time.Unix(0, rec.Time)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		return 0, 0, err
	}
	return n, time.Since(oldest), nil
}

func newGroupLsCmd(g *globalOptions) *cobra.Command {
	var failIfLag string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List groups: position, lag, pending, parked, live members",
		Example: `  evt group ls
  evt group ls --fail-if-lag 5m    # for cron: exits 1 when a group is 5 minutes behind
  evt group ls -o json`,
		Long: `List the consumer groups: committed position, lag (selected events not yet
handled, and how long ago the oldest of them was appended),
events leased to members, parked events and live members.

--fail-if-lag 5m (a duration) or 1000 (a count) exits 1 when any group
is that far behind: for cron jobs and health checks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var maxCount uint64
			var maxAge time.Duration
			if failIfLag != "" {
				if n, err := strconv.ParseUint(failIfLag, 10, 64); err == nil {
					maxCount = n
				} else if errors.Is(err, strconv.ErrRange) {
					return usageErrorf("--fail-if-lag: %s is too large (at most %d)", failIfLag, uint64(math.MaxUint64))
				} else if d, err := codec.ParseDuration(failIfLag); err == nil {
					maxAge = d
				} else if de := (*codec.DurationError)(nil); errors.As(err, &de) && de.TooLarge {
					return usageErrorf("--fail-if-lag: %w", err)
				} else {
					return usageErrorf("--fail-if-lag: want a count or a duration, not %q", failIfLag)
				}
			}
			p, err := g.printer()
			if err != nil {
				return err
			}
			s, err := g.openLocal(false)
			if err != nil {
				return err
			}
			defer s.Close()
			names, err := s.Groups()
			if err != nil {
				return err
			}
			var behind []string
			for _, name := range names {
				row, err := groupRow(s, name)
				if err != nil {
					return err
				}
				if err := p.Row(row); err != nil {
					return err
				}
				lag := row[3].Value.(uint64)
				lagTime := time.Duration(row[4].Value.(float64) * float64(time.Second))
				if failIfLag != "" && (maxAge == 0 && lag > maxCount || maxAge > 0 && lagTime > maxAge) {
					behind = append(behind, name)
				}
			}
			if err := p.Flush(); err != nil {
				return err
			}
			if len(behind) > 0 {
				return fmt.Errorf("groups behind by more than %s: %v", failIfLag, behind)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&failIfLag, "fail-if-lag", "", "exit 1 if a group lags more than this count or duration")
	return cmd
}

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
			s, err := g.openLocal(false)
			if err != nil {
				return err
			}
			defer s.Close()
			row, err := groupRow(s, args[0])
			if err != nil {
				return err
			}
			grp, err := s.OpenGroup(args[0])
			if err != nil {
				return err
			}
			defer grp.Close()
			first, _, err := s.Bounds()
			if err != nil {
				return err
			}
			row = append(row,
				output.Field{Key: "ack_wait", Value: grp.Config.AckWait.String()},
				output.Field{Key: "max_deliver", Value: grp.Config.MaxDeliver},
				output.Field{Key: "ordering", Value: grp.Config.Ordering},
				output.Field{Key: "created", Value: grp.Config.Created},
				output.Field{Key: "live_members", Value: grp.Members(), Text: fmt.Sprint(grp.Members())},
			)
			if st, err := grp.State(); err == nil && st.Committed < first {
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
			s, grp, done, err := g.openGroup(args[0])
			if err != nil {
				return err
			}
			defer done()
			f, err := newEventFilter(selectionPattern(grp.Config.Selection), grp.Config.Types)
			if err != nil {
				return err
			}
			pos, err := cursorPosition(s, f, c)
			if err != nil {
				return err
			}
			st, err := grp.State()
			if err != nil {
				return err
			}
			lo, hi := pos, st.Next
			verb := "redelivered"
			if pos > st.Next {
				lo, hi, verb = st.Next, pos, "skipped"
			}
			var n uint64
			if _, err := s.Scan(lo, func(rec *codec.Record) error {
				if rec.Position >= hi {
					return local.ErrStop
				}
				if f.match(rec) {
					n++
				}
				return nil
			}); err != nil {
				return err
			}
			if dryRun {
				fmt.Fprintf(g.IO.Out, "would move %s from %d to %d: %d events %s\n", args[0], st.Committed, pos, n, verb)
				return nil
			}
			if err := grp.Reset(pos); err != nil {
				return err
			}
			fmt.Fprintf(g.IO.Out, "moved %s from %d to %d: %d events %s\n", args[0], st.Committed, pos, n, verb)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the new position: a cursor")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would change, change nothing")
	return cmd
}

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
			s, grp, done, err := g.openGroup(args[0])
			if err != nil {
				return err
			}
			defer done()
			if m := grp.Members(); len(m) > 0 && !force {
				return fmt.Errorf("group %s has %d live members (PID %s): stop them first, or --force", args[0], len(m), strings.Join(m, ", "))
			}
			return s.RemoveGroup(args[0])
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove the group even while members consume it")
	return cmd
}

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
			_, grp, done, err := g.openGroup(args[0])
			if err != nil {
				return err
			}
			defer done()
			st, err := grp.State()
			if err != nil {
				return err
			}
			positions := make([]uint64, 0, len(st.Parked))
			for pos := range st.Parked {
				positions = append(positions, pos)
			}
			sort.Slice(positions, func(i, j int) bool { return positions[i] < positions[j] })
			for _, pos := range positions {
				pk := st.Parked[pos]
				err := p.Row([]output.Field{
					{Key: "position", Value: pos}, {Key: "stream", Value: pk.Stream}, {Key: "type", Value: pk.Type},
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
			_, grp, done, err := g.openGroup(args[0])
			if err != nil {
				return err
			}
			defer done()
			n, err := grp.Retry(positions...)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.IO.Out, "re-queued %d parked events of %s\n", n, args[0])
			return nil
		},
	}
}

func parsePositions(args []string) ([]uint64, error) {
	var out []uint64
	for _, a := range args {
		p, err := strconv.ParseUint(a, 10, 64)
		if err != nil || p == 0 {
			return nil, usageErrorf("not a position: %q", a)
		}
		out = append(out, p)
	}
	return out, nil
}

// openGroup opens the store and one of its groups; done closes both.
func (g *globalOptions) openGroup(name string) (*local.Store, *local.Group, func(), error) {
	s, err := g.openLocal(false)
	if err != nil {
		return nil, nil, nil, err
	}
	grp, err := s.OpenGroup(name)
	if err != nil {
		s.Close()
		return nil, nil, nil, err
	}
	return s, grp, func() { grp.Close(); s.Close() }, nil
}
