package local

import (
	"context"
	"errors"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// Events retention removed before a group handled them are counted, not
// skipped without a word (log.GroupStatus.Skipped).
//
// A group's scan (Lease) passes them: it counts those of its selection
// at or after the state's SkipFrontier and moves the frontier to its
// scan frontier, so a position is counted once however often a reset
// makes the group read it again. Compaction deletes such events from
// disk, after which nobody could tell they were there: before it
// rewrites anything it counts, for every group, the events it will drop
// from the group's frontier to the end of the sealed segments, with the
// view it compacts by (noteExpired). An event read ahead into the
// pending set and removed before it was handed out is counted when a
// lease finds it gone.

// scanGroup is scanFrom for a group: fn gets the visible events from
// position from (or the log's first), and expired, if not nil, the
// records retention removed (view.expired) on the way, those below the
// max-bytes start included while they are on disk.
func (s *Store) scanGroup(from uint64, fn, expired func(rec *codec.Record) error) (uint64, error) {
	c, err := s.committed()
	if err != nil {
		return 0, err
	}
	v, err := s.view(&c)
	if err != nil {
		return 0, err
	}
	if expired == nil || v.plain {
		from = max(from, v.start)
	}
	err = s.iterate(from, &c, func(rec *codec.Record) error {
		if v.visible(rec) {
			return fn(rec)
		}
		if expired != nil && v.expired(rec) {
			return expired(rec)
		}
		return nil
	})
	return c.next, err
}

// expiredAt reports whether the record at position p is on disk and was
// removed by retention (view.expired).
func (s *Store) expiredAt(p uint64) bool {
	c, err := s.committed()
	if err != nil {
		return false
	}
	v, err := s.view(&c)
	if err != nil {
		return false
	}
	rec, err := s.recordAt(p, &c)
	return err == nil && v.expired(&rec)
}

// noteExpired counts, for every group, the events of its selection that
// a compaction by view v will remove from before end (the active
// segment) and that the group has not counted or handled yet: those at
// or after its skip frontier, and those read ahead but not handed out
// (which it drops from its pending set). The scan runs without the
// group's lock; only what is still ahead of the frontier when the state
// is updated is counted, so a lease that counted meanwhile is not
// counted twice.
func (s *Store) noteExpired(v *view, c *commitState, end uint64) error {
	if v.plain {
		return nil
	}
	names, err := s.Groups(context.Background())
	if err != nil {
		return err
	}
	for _, name := range names {
		g, err := s.openGroup(name)
		if err != nil {
			if errors.Is(err, log.ErrNotFound) {
				continue
			}
			return err
		}
		err = g.noteExpired(v, c, end)
		g.Close()
		if err != nil && !errors.Is(err, log.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (g *Group) noteExpired(v *view, c *commitState, end uint64) error {
	st, err := g.read()
	if err != nil {
		return err
	}
	if st.SkipFrontier >= end && len(st.Pending) == 0 {
		return nil
	}
	var gone []uint64 // positions, ascending
	from := st.SkipFrontier
	for p := range st.Pending {
		from = min(from, p)
	}
	err = g.s.iterate(from, c, func(rec *codec.Record) error {
		if rec.Position >= end {
			return errStop
		}
		if !v.visible(rec) && v.expired(rec) && g.match(rec) {
			gone = append(gone, rec.Position)
		}
		return nil
	})
	if err != nil || len(gone) == 0 {
		return err
	}
	return g.Update(func(st *GroupState) error {
		for _, p := range gone {
			if l, pending := st.Pending[p]; pending && l.Member == "" {
				delete(st.Pending, p)
				st.Skipped++
			} else if !pending && p >= st.SkipFrontier {
				st.Skipped++
			}
		}
		st.SkipFrontier = max(st.SkipFrontier, end)
		return nil
	})
}

// countSkipped is Status's count of the events retention removed before
// the group handled them: those counted, and those the group's scan has
// not reached yet or read ahead but not handed out.
func countSkipped(st *GroupState, rec *codec.Record) bool {
	if rec.Position >= st.SkipFrontier {
		return true
	}
	l, pending := st.Pending[rec.Position]
	return pending && l.Member == ""
}
