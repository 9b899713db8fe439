package local

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The id index is two parts: the `ids` hash table holds the ids of the
// positions from its `from` word on (the active segment, about one
// segment's worth), and id runs (idrun.go), immutable sorted files of 8
// bytes an id, hold the ids of every position before it. Between them
// they cover every committed position (the invariant a change must keep:
// a position whose id is in neither would make a retry append anew).
//
//   - When a segment is sealed (roll), the table's entries go into a run
//     covering [from, next), and the table is replaced by an empty one
//     whose from is next: a cost of one segment's ids, never the store's.
//   - Runs are merged LSM-style (four of one size into one) by the process
//     that sealed, after it let go of the append lock; only the swap
//     (rename the merged run over its first input, remove the others)
//     takes the lock. A run wholly inside another is a leftover of a swap
//     cut short and is ignored.
//   - Compaction rewrites the runs without the ids of dropped events, off
//     the append lock, and swaps each under it.
//   - A rebuild (repair, recovery after a lost publish) puts every id in
//     the table again, from position 1, and only then removes the runs.
//
// Every hit, in the table or a run, is checked against the record it
// names, so an entry that outlived its event is harmless; an id missing
// from both would not be, which is what the orders above guard.
//
// The table's header words past the fixed part (see hashFile):
//
//	64  from u64   the first position whose id the table holds (0: 1)
//	72  gen u64    bumped when the set of runs changes, so other writers reload it
//
// Tables of format 1 (written by evt before id runs) have neither and
// hold every id: from 1, no runs. They are used as they are; the first
// seal turns their entries into one run. Tables of format 2 are refused
// by those older binaries, which rebuild a complete table from the log.
const (
	idsFromWord = 64
	idsGenWord  = 72
	idsFormat   = 2

	// idRunFanout runs of one level are merged into one of the next.
	idRunFanout = 4
	// idRunBase is the size, in ids, of a level-0 run (a segment of
	// 200-byte events holds about 250k).
	idRunBase = 1 << 16
)

// idsFrom is the first position whose id the table holds.
func (h *hashFile) idsFrom() uint64 { return max(h.load(idsFromWord), 1) }

func runName(from uint64) string { return fmt.Sprintf("%020d.ids", from) }

// isRunName reports whether name is that of an id run.
func isRunName(name string) bool {
	if len(name) != 24 || !strings.HasSuffix(name, ".ids") {
		return false
	}
	_, err := strconv.ParseUint(name[:20], 10, 64)
	return err == nil
}

// listRuns opens every id run of the store, oldest first, without those
// wholly inside another (leftovers of a merge or compaction cut short).
func (s *Store) listRuns() ([]*idRun, error) {
	ents, err := s.fsys.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var runs []*idRun
	for _, e := range ents {
		if !isRunName(e.Name()) {
			continue
		}
		r, err := openIDRun(s.fsys, join(s.dir, e.Name()))
		if err != nil {
			closeRuns(runs)
			return nil, err
		}
		runs = append(runs, r)
	}
	slices.SortFunc(runs, func(a, b *idRun) int { return cmp.Compare(a.from, b.from) })
	var kept []*idRun
	for _, r := range runs {
		if n := len(kept); n > 0 && r.to <= kept[n-1].to {
			r.close() // inside the previous one
			continue
		}
		kept = append(kept, r)
	}
	return kept, nil
}

func closeRuns(runs []*idRun) {
	for _, r := range runs {
		r.close()
	}
}

// idRuns returns the runs, reloaded when the table was replaced or its
// gen moved since they were loaded. The caller holds the append lock.
func (s *Store) idRuns() ([]*idRun, error) {
	if s.runsOf == s.ids && s.runsGen == s.ids.load(idsGenWord) {
		return s.runs, nil
	}
	runs, err := s.listRuns()
	if err != nil {
		return nil, err
	}
	closeRuns(s.runs)
	s.runs, s.runsOf, s.runsGen = runs, s.ids, s.ids.load(idsGenWord)
	return s.runs, nil
}

// flushIDs moves the table's ids of positions [from, next) into a run and
// replaces the table by an empty one starting at next. Under the append
// lock, with the table caught up to next.
func (s *Store) flushIDs(next uint64) error {
	from := s.ids.idsFrom()
	if next <= from {
		return nil
	}
	if next-from > idRunMaxSpan {
		return fmt.Errorf("id index: %d positions since the last seal, too many for one run", next-from)
	}
	ents := make([]uint64, 0, s.ids.count())
	s.ids.each(func(key hashKey, vals []uint64) bool {
		// Positions at or past next are entries of appends that failed.
		if p := vals[0]; p >= from && p < next {
			ents = append(ents, idEntry(key, p, from))
		}
		return true
	})
	if err := writeIDRun(s.fsys, s.dir, join(s.dir, runName(from)), from, next, ents); err != nil {
		return err
	}
	// Only now, with the run durable, may the table forget those ids.
	g, err := createHashFile(s.fsys, s.ids.path+".grow", idsValues, 0)
	if err != nil {
		return err
	}
	g.store(idsFromWord, next)
	g.store(idsGenWord, s.ids.load(idsGenWord)+1)
	ids, err := s.ids.replaceBy(g)
	if err != nil {
		return err
	}
	s.ids = ids
	s.mergeDue = true
	return s.fsys.SyncDir(s.dir)
}

// removeRuns removes every id run, after a rebuild put all ids in the
// table.
func (s *Store) removeRuns() error {
	ents, err := s.fsys.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if isRunName(e.Name()) {
			if err := s.fsys.Remove(join(s.dir, e.Name())); err != nil {
				return err
			}
		}
	}
	closeRuns(s.runs)
	s.runs, s.runsOf = nil, nil
	return nil
}

// runLevel is the level of a run of n ids: 0 up to 4 × idRunBase, then
// one more for every factor of idRunFanout.
func runLevel(n int) int {
	l := 0
	for m := n / idRunBase; m >= idRunFanout; m /= idRunFanout {
		l++
	}
	return l
}

// mergeDueRuns merges runs while the newest idRunFanout of them are of
// one level, after a seal, off the append lock (it takes the compaction
// lock if it is free, and skips the merge if not: a compaction, verify
// or repair is running, or another writer is merging). Errors are not
// the append's: the runs stay as they were, and the next seal tries
// again.
func (s *Store) mergeDueRuns(ctx context.Context) {
	s.mergeDue = false
	cl, err := openNamedLock(s.fsys, join(s.dir, compactLockFile), "compaction lock")
	if err != nil {
		return
	}
	defer cl.close()
	if unix.Flock(int(cl.f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return
	}
	defer unix.Flock(int(cl.f.Fd()), unix.LOCK_UN)
	for range 8 { // a cascade is at most a few levels
		if ctx.Err() != nil {
			return
		}
		done, err := s.mergeOnce(ctx)
		if err != nil || !done {
			return
		}
	}
}

// mergeOnce merges the newest idRunFanout runs if they are of one level.
// It holds the compaction lock.
func (s *Store) mergeOnce(ctx context.Context) (bool, error) {
	runs, err := s.listRuns()
	if err != nil {
		return false, err
	}
	defer closeRuns(runs)
	n := len(runs)
	if n < idRunFanout {
		return false, nil
	}
	in := runs[n-idRunFanout:]
	level := runLevel(len(in[0].entries))
	for _, r := range in {
		if runLevel(len(r.entries)) != level {
			return false, nil
		}
	}
	for i := 1; i < len(in); i++ {
		if in[i].from != in[i-1].to {
			return false, nil // a gap (a run lost to damage): leave it to repair
		}
	}
	out := join(s.dir, in[0].name+".merge")
	if err := mergeIDRuns(s.fsys, s.dir, out, in, nil); err != nil {
		s.fsys.Remove(out)
		return false, err
	}
	return true, s.swapRuns(ctx, out, in)
}

// swapRuns puts the run at out in place of the runs in (adjacent, in
// order) under the append lock: renamed over the first, the others
// removed. It gives up, removing out, if any of in changed since.
func (s *Store) swapRuns(ctx context.Context, out string, in []*idRun) error {
	if err := s.lock.acquire(ctx, s.opts.LockTimeout); err != nil {
		s.fsys.Remove(out)
		return err
	}
	defer s.lock.release()
	if _, err := s.prepare(); err != nil {
		s.fsys.Remove(out)
		return err
	}
	for _, r := range in {
		cur, err := openIDRun(s.fsys, join(s.dir, r.name))
		same := err == nil && cur.from == r.from && cur.to == r.to && len(cur.entries) == len(r.entries)
		cur.close()
		if !same {
			s.fsys.Remove(out)
			return nil
		}
	}
	if err := s.fsys.Rename(out, join(s.dir, in[0].name)); err != nil {
		s.fsys.Remove(out)
		return err
	}
	// The merged run covers the others from here on, once its name is
	// durable; removing them may be cut short (then they are ignored as
	// inside it).
	if err := s.fsys.SyncDir(s.dir); err != nil {
		return err
	}
	for _, r := range in[1:] {
		s.fsys.Remove(join(s.dir, r.name))
	}
	s.ids.store(idsGenWord, s.ids.load(idsGenWord)+1)
	return s.fsys.SyncDir(s.dir)
}

// hasRunLeftovers reports whether a compaction or merge of id runs was
// cut short (its output is left), or a table of before id runs was.
func (s *Store) hasRunLeftovers() bool {
	if s.exists(join(s.dir, idsFile+".compact")) {
		return true
	}
	ents, err := s.fsys.ReadDir(s.dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ids.compact") {
			return true
		}
	}
	return false
}

// holdsPos reports whether r has an entry for key at pos.
func holdsPos(r *idRun, key hashKey, pos uint64) bool {
	found := false
	r.candidates(key, func(p uint64) bool {
		found = p == pos
		return !found
	})
	return found
}
