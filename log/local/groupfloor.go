package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/atomicfile"
	"github.com/evtdev/evt/log/local/vfs"
)

// Queue mode stays monotonic: what until-acked expired stays expired.
//
// Until-acked hides an event of stream S below ackedBelow(S), the lowest
// acked position of the groups reading S (see view.go). That mark only
// grows while groups ack, but three things lower it: a group reset to an
// earlier position, a group created (from the start, say) over streams
// others read, and the removal of the last group reading a stream (no
// group reads it: nothing is hidden). Without more, the events every
// group had acked would come back, and be delivered again, until a
// compaction removed them (and even then each stream's newest record,
// which compaction keeps).
//
// So each of those operations first records the marks as they are
// (groups/.expired, a list of snapshots, each the selection and acked
// position of every group then), and until-acked hides what any
// snapshot hid: ackedBelow(S) is the larger of the live marks' and every
// snapshot's minimum over the groups reading S. Marks are frozen while
// the snapshot is taken and the operation runs (every group's lock is
// held), so nothing expires between the two.
//
// A snapshot is dropped once a newer one hides at least as much for
// every stream; a sufficient test (dominates) keeps the list short in
// the common case of resets and re-creations of the same groups.

const expiredFile = ".expired" // in groups/; no group name starts with '.'

// expiredSnapshots is groups/.expired.
type expiredSnapshots struct {
	Snapshots [][]markJSON `json:"snapshots"`
}

// markJSON is a groupMark as stored.
type markJSON struct {
	Selection string `json:"selection"`
	Acked     uint64 `json:"acked"`
}

// groupFloors reads the snapshots of groups/.expired as marks; none if
// there is no file.
func (s *Store) groupFloors() ([][]groupMark, error) {
	b, err := vfs.ReadFile(s.fsys, join(join(s.dir, "groups"), expiredFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e expiredSnapshots
	bad := func(reason string) error {
		return &log.CorruptError{File: "groups/" + expiredFile, Offset: -1, Reason: reason}
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, bad(err.Error())
	}
	out := make([][]groupMark, 0, len(e.Snapshots))
	for _, snap := range e.Snapshots {
		marks := make([]groupMark, 0, len(snap))
		for _, m := range snap {
			sel, err := codec.ParseSelection(m.Selection)
			if err != nil {
				return nil, bad(err.Error())
			}
			marks = append(marks, groupMark{sel: sel, acked: m.Acked})
		}
		out = append(out, marks)
	}
	return out, nil
}

// lowering runs fn, an operation that may lower until-acked marks
// (CreateGroup, RemoveGroup, a backward Reset), with every group's lock
// held and, if a retention rule is until-acked, after recording the
// marks in groups/.expired. groups/.lock serialises such operations.
// fn must not take a group lock itself (Group.updateLocked).
func (s *Store) lowering(fn func() error) error {
	groups := join(s.dir, "groups")
	if err := vfs.MkdirAll(s.fsys, groups, 0o700); err != nil {
		return err
	}
	lf, err := s.fsys.OpenFile(join(groups, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := flockRetry(int(lf.Fd())); err != nil {
		return err
	}
	names, err := s.Groups(context.Background())
	if err != nil {
		return err
	}
	for _, name := range names { // sorted: every locker takes them in one order
		f, err := s.fsys.OpenFile(join(s.groupDir(name), "lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		defer f.Close() // closing releases the flock
		if err := flockRetry(int(f.Fd())); err != nil {
			return err
		}
	}
	if err := s.recordMarks(); err != nil {
		return fmt.Errorf("record the queue's expired marks: %w", err)
	}
	return fn()
}

// recordMarks adds the groups' marks now to groups/.expired, if a rule
// is until-acked and there is a group, dropping the snapshots the new
// one dominates.
func (s *Store) recordMarks() error {
	r, err := s.Retention()
	if err != nil {
		return err
	}
	untilAcked := false
	for _, rule := range r.Rules {
		untilAcked = untilAcked || rule.UntilAcked
	}
	if !untilAcked {
		return nil
	}
	names, err := s.Groups(context.Background())
	if err != nil {
		return err
	}
	var now []markJSON
	for _, name := range names {
		cfg, err := s.groupConfig(name)
		if err != nil {
			return err
		}
		st, err := readGroupState(s.fsys, s.groupDir(name), name)
		if err != nil {
			return err
		}
		now = append(now, markJSON{Selection: cfg.Selection, Acked: st.acked()})
	}
	if len(now) == 0 {
		return nil
	}
	var e expiredSnapshots
	path := join(join(s.dir, "groups"), expiredFile)
	if b, err := vfs.ReadFile(s.fsys, path); err == nil {
		if err := json.Unmarshal(b, &e); err != nil {
			return &log.CorruptError{File: "groups/" + expiredFile, Offset: -1, Reason: err.Error()}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	kept := e.Snapshots[:0]
	for _, old := range e.Snapshots {
		if !dominates(now, old) {
			kept = append(kept, old)
		}
	}
	sort.Slice(now, func(i, j int) bool { return now[i].Selection < now[j].Selection })
	e.Snapshots = append(kept, now)
	b, err := json.Marshal(&e)
	if err != nil {
		return err
	}
	return atomicfile.WriteFS(s.fsys, path, append(b, '\n'), 0o600)
}

// dominates reports whether snapshot a hides, for every stream, at least
// what snapshot b hides: every selection of b is one of a's (so a stream
// b's groups read is read by a's), and no mark of b is above a mark of a
// (so b's minimum over a stream's groups is at most a's).
func dominates(a, b []markJSON) bool {
	sels := map[string]bool{}
	lowest := ^uint64(0)
	for _, m := range a {
		sels[m.Selection] = true
		lowest = min(lowest, m.Acked)
	}
	for _, m := range b {
		if !sels[m.Selection] || m.Acked > lowest {
			return false
		}
	}
	return true
}

// acked is the position below which the group is done with every event
// for until-acked: its committed position, or its first parked event
// (parked events are kept).
func (st *GroupState) acked() uint64 {
	a := st.Committed
	for p := range st.Parked {
		a = min(a, p)
	}
	return a
}
