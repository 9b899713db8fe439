package cmd

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// evt group and what its subcommands share; each subcommand is in its
// own file (group_create.go, group_ls.go, …).

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

// cursorPosition resolves a cursor to the first position it names, for a
// selection (a group's start, a reset): the position of the first
// selected event the cursor reads, or the end when it reads none.
func cursorPosition(ctx context.Context, s log.Store, f eventFilter, c codec.Cursor) (uint64, error) {
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
	err = r.read(ctx, log.Query{From: c}, func(rec *codec.Record) error { at = rec.Position; return errStop })
	return at, err
}

// groupRow is one group's summary, as ls and show print it, and its
// status.
func groupRow(ctx context.Context, grp log.Group) ([]output.Field, log.GroupStatus, error) {
	st, err := grp.Status(ctx)
	if err != nil {
		return nil, st, err
	}
	var lagTime time.Duration
	if !st.Oldest.IsZero() {
		lagTime = time.Since(st.Oldest)
	}
	return []output.Field{
		{Key: "name", Value: grp.Config().Name},
		{Key: "selection", Value: grp.Config().Selection},
		{Key: "position", Value: st.Committed},
		{Key: "lag", Value: st.Lag},
		{Key: "lag_seconds", Value: lagTime.Seconds(), Text: lagTime.Round(time.Millisecond).String()},
		{Key: "pending", Value: st.Leased},
		{Key: "parked", Value: st.Parked},
		{Key: "members", Value: len(st.Members)},
	}, st, nil
}

// selectionPattern is a group's selection as the argument that made it.
func selectionPattern(sel string) string {
	if sel == "*" {
		return ""
	}
	return sel
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
func (g *globalOptions) openGroup(ctx context.Context, name string) (log.Store, log.Group, func(), error) {
	s, err := g.openStore(false)
	if err != nil {
		return nil, nil, nil, err
	}
	grp, err := s.OpenGroup(ctx, name)
	if err != nil {
		s.Close()
		return nil, nil, nil, err
	}
	return s, grp, func() { grp.Close(); s.Close() }, nil
}
