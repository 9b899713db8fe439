package natsjs

import (
	"context"
	"time"

	"github.com/evtdev/evt/log"
)

// Events retention removed before a group handled them are counted
// (log.GroupStatus.Skipped), not skipped without a word.
//
// Retention is a view here, so the group's consumers still deliver what
// max-age and max-count hide: a lease acks such an event instead of
// handing it out, and counts it. The group's record g.<name>.s keeps the
// count, how much of it members have announced (Member.Skipped), and per
// partition a frontier: every hidden event of the partition below it is
// counted or was delivered before it was hidden. A consumer delivers its
// partition in position order, so a lease counts a hidden event at or
// past its partition's frontier and moves the frontier past it; a reset
// moves every frontier past what the partition had delivered (and to
// the reset's position, forward: what a reset skips is not retention's),
// so reading again counts nothing twice. Status adds the hidden events
// ahead of the group: past a partition's frontier and not yet delivered.
// A compaction, which purges hidden events and with them the evidence,
// first counts for every group the hidden events ahead of it up to the
// end of its sweep, and moves the frontiers there.

// skipRec is a group's g.<name>.s.
type skipRec struct {
	N uint64   `json:"n"`           // hidden events counted
	A uint64   `json:"a,omitempty"` // of them, announced by a member's lease
	F []uint64 `json:"f,omitempty"` // per partition, the frontier
}

func (r *skipRec) frontier(part int) uint64 {
	if part < len(r.F) {
		return r.F[part]
	}
	return 0
}

func (r *skipRec) raise(part int, p uint64) {
	for len(r.F) <= part {
		r.F = append(r.F, 0)
	}
	r.F[part] = max(r.F[part], p)
}

// retView decides what retention hides, as a read does (reader.selected):
// the rules, the time, and the heads of the streams max-count limits.
type retView struct {
	s       *Store
	rules   log.Retention
	now     time.Time
	limited bool // a rule has max-age or max-count
	heads   map[string]head
}

func (s *Store) retView(ctx context.Context) (*retView, error) {
	r, err := s.retention(ctx)
	if err != nil {
		return nil, err
	}
	return &retView{s: s, rules: r, now: time.Now(), limited: limiting(r), heads: map[string]head{}}, nil
}

// hidden reports whether retention hides event e from reads.
func (v *retView) hidden(ctx context.Context, e *entry) (bool, error) {
	if !v.limited || e.mark != "" {
		return false, nil
	}
	l := limitsOf(v.rules, e.stream)
	var h head
	if l.maxCount > 0 {
		var ok bool
		if h, ok = v.heads[e.stream]; !ok {
			var err error
			if h, err = v.s.head(ctx, e.stream); err != nil {
				return false, err
			}
			v.heads[e.stream] = h
		}
	}
	return hidden(e, h, l, v.now), nil
}

// passed is a hidden event a lease or a compaction went past.
type passed struct {
	part int
	pos  uint64
}

// updateSkips applies fn to the group's skip record with a
// compare-and-set, again until no other writer got in between.
func (g *Group) updateSkips(ctx context.Context, fn func(r *skipRec)) error {
	for {
		var r skipRec
		rev, _, err := g.s.kvGetJSON(ctx, g.key("s"), &r)
		if err != nil {
			return err
		}
		fn(&r)
		ok, err := g.s.kvUpdateJSON(ctx, g.key("s"), r, rev)
		if err != nil || ok {
			return err
		}
	}
}

// countPassed counts the hidden events a lease passed that no one
// counted before, and announces what is counted and not yet announced:
// the member's news (Member.Skipped).
func (g *Group) countPassed(ctx context.Context, ps []passed) (news uint64, err error) {
	err = g.updateSkips(ctx, func(r *skipRec) {
		for _, p := range ps {
			if p.pos >= r.frontier(p.part) {
				r.N++
				r.raise(p.part, p.pos+1)
			}
		}
		news, r.A = r.N-min(r.A, r.N), r.N
	})
	return news, err
}

// unannounced reads whether the record holds counts no member announced
// yet (a compaction's), without writing.
func (g *Group) unannounced(ctx context.Context) (bool, error) {
	var r skipRec
	_, ok, err := g.s.kvGetJSON(ctx, g.key("s"), &r)
	return ok && r.N > r.A, err
}

// noteCompacted counts, for every group, the hidden events it selects
// ahead of it that a compaction through end is about to purge (passed:
// each hidden event the sweep went over, with its stream), and moves the
// group's frontiers to end+1. It runs before the first purge.
func (s *Store) noteCompacted(ctx context.Context, hiddenEvents []entry, end uint64) error {
	if len(hiddenEvents) == 0 {
		return nil
	}
	names, err := s.Groups(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		gr, err := s.OpenGroup(ctx, name)
		if err != nil {
			continue // removed meanwhile
		}
		g := gr.(*Group)
		delivered := make([]uint64, g.parts)
		for i, c := range g.names {
			info, err := s.consumerInfo(ctx, c)
			if err != nil {
				return err
			}
			delivered[i] = info.Delivered.Stream
		}
		var mine []passed
		for i := range hiddenEvents {
			e := &hiddenEvents[i]
			part := partitionOf(e.stream, g.parts)
			if g.selected(e) && e.seq > delivered[part] {
				mine = append(mine, passed{part: part, pos: e.seq})
			}
		}
		err = g.updateSkips(ctx, func(r *skipRec) {
			for _, p := range mine {
				if p.pos >= r.frontier(p.part) {
					r.N++
				}
			}
			for i := range g.parts {
				r.raise(i, end+1)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}
