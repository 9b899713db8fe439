package local

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/evtdev/evt/log"
)

// Lag without a scan. A group that reads every stream (no selection, no
// types) on a log no limit applies to (view.plain: no retention rule, no
// truncate or delete ever, nothing dropped by max-bytes) has as its lag
// the events it holds read ahead (Pending, at most maxPending) plus every
// record from Next to the committed end. A segment as appended holds
// every position of its range, so that count is a subtraction; only a
// segment compacted under rules since removed has holes, and for it the
// offsets file (16 bytes a position, no record read) says which
// positions remain. Any other group, or a log with limits, is counted by
// the scan in Status: which events a selection or the limits keep is
// only known from the records.

// errLagScan: the fast count does not apply; scan.
var errLagScan = errors.New("lag needs a scan")

// quickLag fills out's Lag and Oldest for a group that reads everything
// on a plain log, or returns errLagScan.
func (g *Group) quickLag(st *GroupState, out *log.GroupStatus) error {
	sel := g.cfg.Selection
	if (sel != "" && sel != "*") || len(g.cfg.Types) > 0 {
		return errLagScan
	}
	s := g.s
	c, err := s.committed()
	if err != nil {
		return err
	}
	h, err := s.tables()
	if err != nil {
		return err
	}
	if h.applied()+1 < c.next {
		return errLagScan // the tables lag the log: cuts in the tail are not known yet
	}
	v, err := s.view(&c)
	if err != nil {
		return err
	}
	if !v.plain {
		return errLagScan
	}
	firsts, err := s.segmentList(&c)
	if err != nil {
		return err
	}
	var oldest uint64 // the first lagging position; 0: none
	for p := range st.Pending {
		if p < st.Committed || p >= st.Next || p < v.start {
			continue
		}
		// Read ahead (up to maxPending): whether each is still there is
		// one offsets entry, not a record.
		first, err := s.segmentFor(p, &c)
		if err != nil {
			return err
		}
		n, _, err := s.positionsIn(first, p, p+1, first == firsts[len(firsts)-1])
		if err != nil {
			return err
		}
		if n == 0 {
			continue // dropped by an earlier compaction
		}
		out.Lag++
		if oldest == 0 || p < oldest {
			oldest = p
		}
	}
	from := max(st.Next, st.Committed, v.start)
	for i, first := range firsts {
		end := c.next
		if i+1 < len(firsts) {
			end = firsts[i+1]
		}
		lo, hi := max(from, first), end
		if lo >= hi {
			continue
		}
		n, firstHere, err := s.positionsIn(first, lo, hi, i == len(firsts)-1)
		if err != nil {
			return err
		}
		out.Lag += n
		if n > 0 && (oldest == 0 || firstHere < oldest) {
			oldest = firstHere
		}
	}
	if oldest != 0 {
		first, err := s.segmentFor(oldest, &c)
		if err != nil {
			return err
		}
		sf, err := s.segment(first)
		if err != nil {
			return err
		}
		t, err := s.timeAt(sf, oldest, &c)
		if err != nil {
			return err
		}
		out.Oldest = time.Unix(0, t).UTC()
	}
	return nil
}

// positionsIn counts the records of segment first in positions [lo, hi)
// and returns the first of them. The active segment and a segment as
// appended (generation 0) hold every position; a compacted one's
// offsets file tells which remain.
func (s *Store) positionsIn(first, lo, hi uint64, active bool) (uint64, uint64, error) {
	if active {
		return hi - lo, lo, nil
	}
	sf, err := s.segment(first)
	if err != nil {
		return 0, 0, err
	}
	if sf.gen == 0 {
		return hi - lo, lo, nil
	}
	if sf.sparse {
		n, firstHere, err := sf.keptIn(lo, hi)
		if err != nil {
			return 0, 0, errLagScan
		}
		return n, firstHere, nil
	}
	if sf.idx == nil {
		return 0, 0, errLagScan
	}
	var n, firstHere uint64
	buf := make([]byte, min(hi-lo, 4096)*offsetEntrySize)
	for p := lo; p < hi; {
		k := min(hi-p, 4096)
		b := buf[:k*offsetEntrySize]
		if _, err := sf.idx.ReadAt(b, int64(p-first)*offsetEntrySize); err != nil {
			return 0, 0, errLagScan // short: the offsets file is rebuilt by recovery
		}
		for j := range k {
			if binary.LittleEndian.Uint64(b[j*offsetEntrySize:]) >= segmentHeaderSize {
				if n == 0 {
					firstHere = p + j
				}
				n++
			}
		}
		p += k
	}
	return n, firstHere, nil
}
