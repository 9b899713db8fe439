package local

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// A view is what the limits leave of the log at one moment: every public
// read (Scan, ReadStream, Head, Streams, a group's leases) passes records
// through visible. Recovery, verify, repair and compaction read the raw
// log.
//
// Every limit removes a prefix of each stream, which is what lets
// compaction drop records without breaking the back-pointer chains a
// stream read walks:
//   - a cut (truncate, delete) removes versions up to it;
//   - max-count removes all but the newest versions;
//   - max-age removes events older than a time, and times never decrease
//     along the log;
//   - until-acked removes positions below a group's committed position
//     (and below any event it parked);
//   - max-bytes and dropped segments remove positions below a start.
type view struct {
	plain    bool      // no limit applies: only markers are hidden
	start    uint64    // positions before it are gone
	heads    *hashFile // for cuts and max-count; nil if neither is needed
	cuts     bool
	rules    []viewRule
	groups   []groupMark   // for until-acked rules
	floors   [][]groupMark // snapshots of earlier marks (groupfloor.go)
	marks    map[string]uint64
	maxCount bool
	// ruleMatch caches which rules match a stream (see matching).
	ruleMatch map[string]uint64
}

type viewRule struct {
	sel        codec.Selection
	minTime    int64 // events before it are gone; 0: no age limit
	maxCount   uint64
	untilAcked bool
	archive    string // Rule.Archive
}

// groupMark is what until-acked needs of a group: which streams it reads
// and below which position it has acked everything.
type groupMark struct {
	sel   codec.Selection
	acked uint64
}

// view builds the view of the log under c.
func (s *Store) view(c *commitState) (*view, error) {
	firsts, err := s.segmentList(c)
	if err != nil {
		return nil, err
	}
	r, err := s.Retention()
	if err != nil {
		return nil, err
	}
	h, err := s.tables()
	if err != nil {
		return nil, err
	}
	v := &view{start: firsts[0], cuts: h.hasCuts()}
	if r.MaxBytes > 0 {
		start, err := s.bytesStart(firsts, c, r.MaxBytes)
		if err != nil {
			return nil, err
		}
		v.start = max(v.start, start)
	}
	now := time.Now().UnixNano()
	untilAcked := false
	for _, rule := range r.Rules {
		sel, err := codec.ParseSelection(rule.Selection)
		if err != nil {
			return nil, err
		}
		vr := viewRule{sel: sel, maxCount: rule.MaxCount, untilAcked: rule.UntilAcked, archive: rule.Archive}
		if rule.MaxAge > 0 {
			vr.minTime = now - int64(rule.MaxAge)
		}
		v.maxCount = v.maxCount || rule.MaxCount > 0
		untilAcked = untilAcked || rule.UntilAcked
		v.rules = append(v.rules, vr)
	}
	if untilAcked {
		// The states before the snapshots: an operation that lowers a
		// mark records the snapshot first (groupfloor.go).
		if v.groups, err = s.groupMarks(); err != nil {
			return nil, err
		}
		if v.floors, err = s.groupFloors(); err != nil {
			return nil, err
		}
		v.marks = map[string]uint64{}
	}
	if v.cuts || v.maxCount {
		v.heads = h
	}
	v.plain = v.start == firsts[0] && !v.cuts && len(v.rules) == 0
	return v, nil
}

// visible reports whether a record is an event the limits keep.
func (v *view) visible(rec *codec.Record) bool {
	if rec.Marker() {
		return false
	}
	if v.plain {
		return true
	}
	if rec.Position < v.start {
		return false
	}
	if len(rec.Stream) == 0 {
		return true
	}
	// The name is only compared and hashed here, never kept.
	name := unsafe.String(&rec.Stream[0], len(rec.Stream))
	head, cutOff := v.head(name, rec)
	if cutOff {
		return false
	}
	if len(v.rules) == 0 {
		return true
	}
	matches := v.matching(name)
	for i := range v.rules {
		r := &v.rules[i]
		if i < 64 && matches&(1<<i) == 0 || i >= 64 && !r.sel.Match(name) {
			continue
		}
		if rec.Time < r.minTime {
			return false
		}
		if r.maxCount > 0 && head >= r.maxCount && rec.Version <= head-r.maxCount {
			return false
		}
		if r.untilAcked && rec.Position < v.ackedBelow(name) {
			return false
		}
	}
	return true
}

// matching returns which of the first 64 rules match stream, as bits,
// remembered per stream: a glob match per rule per record would be most
// of the cost of a filtered replay.
func (v *view) matching(stream string) uint64 {
	if m, ok := v.ruleMatch[stream]; ok {
		return m
	}
	var m uint64
	for i := range min(len(v.rules), 64) {
		if v.rules[i].sel.Match(stream) {
			m |= 1 << i
		}
	}
	if v.ruleMatch == nil || len(v.ruleMatch) > 1<<16 {
		v.ruleMatch = map[string]uint64{} // bounded memory over millions of streams
	}
	v.ruleMatch[strings.Clone(stream)] = m
	return m
}

// ackedBelow is the position below which every group reading stream has
// acked every event (0 if no group reads it), or below which it had at
// the time of a snapshot (groupfloor.go), whichever is higher.
func (v *view) ackedBelow(stream string) uint64 {
	if m, ok := v.marks[stream]; ok {
		return m
	}
	var m uint64
	found := false
	for _, g := range v.groups {
		if g.sel.Match(stream) {
			if !found || g.acked < m {
				m = g.acked
			}
			found = true
		}
	}
	// What an earlier snapshot of the marks hid stays hidden.
	for _, snap := range v.floors {
		var f uint64
		found := false
		for _, g := range snap {
			if g.sel.Match(stream) {
				if !found || g.acked < f {
					f = g.acked
				}
				found = true
			}
		}
		m = max(m, f)
	}
	if len(v.marks) > 1<<16 {
		clear(v.marks) // bounded memory over millions of streams
	}
	v.marks[strings.Clone(stream)] = m
	return m
}

// groupMarks reads, without locks, each group's selection and acked
// position. A group's state file is replaced atomically.
func (s *Store) groupMarks() ([]groupMark, error) {
	names, err := s.Groups(context.Background())
	if err != nil {
		return nil, err
	}
	var out []groupMark
	for _, name := range names {
		cfg, err := s.groupConfig(name)
		if errors.Is(err, log.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		sel, err := codec.ParseSelection(cfg.Selection)
		if err != nil {
			return nil, err
		}
		st, err := readGroupState(s.fsys, s.groupDir(name), name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, groupMark{sel: sel, acked: st.acked()})
	}
	return out, nil
}

// bytesStart is the first position max-bytes keeps: the oldest sealed
// segments go while the segments after them hold more than maxBytes.
// The active segment always stays.
func (s *Store) bytesStart(firsts []uint64, c *commitState, maxBytes int64) (uint64, error) {
	total := c.size
	for i := len(firsts) - 2; i >= 0; i-- {
		size, err := s.appendedSize(firsts[i])
		if errors.Is(err, fs.ErrNotExist) {
			continue // compacted away meanwhile
		}
		if err != nil {
			return 0, err
		}
		total += size
		if total > maxBytes {
			return firsts[i+1], nil
		}
	}
	return firsts[0], nil
}

// appendedSize is a sealed segment's size as appended, before any
// compaction: max-bytes goes by it, or compacting the segments it removed
// (which keeps each stream's newest record) would make the log look
// smaller and bring removed events back. Remembered per file: a segment
// file never changes, compaction replaces it.
func (s *Store) appendedSize(first uint64) (int64, error) {
	p := join(s.dir, segmentName(first))
	fi, err := s.fsys.Stat(p)
	if err != nil {
		return 0, err
	}
	key := [2]uint64{first, inode(fi)}
	if n, ok := s.sizes[key]; ok {
		return n, nil
	}
	f, err := s.fsys.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [segmentHeaderSize]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, err
	}
	n := fi.Size()
	if gen := binary.LittleEndian.Uint32(h[32:]); gen > 0 {
		n = int64(binary.LittleEndian.Uint64(h[40:]))
	}
	if s.sizes == nil || len(s.sizes) > 1<<16 {
		s.sizes = map[[2]uint64]int64{}
	}
	s.sizes[key] = n
	return n, nil
}

// inode is a file's inode number, to tell a replaced file from the old.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// expired reports whether a retention limit (max-bytes, max-age,
// max-count) removed an event: not a marker, not an event cut by a
// truncate or delete, nor one until-acked removed (its groups acked it).
// A consumer group counts the events of its selection it never got to
// because of them (groupskip.go).
func (v *view) expired(rec *codec.Record) bool {
	if rec.Marker() || v.plain {
		return false
	}
	if rec.Position < v.start {
		return true
	}
	if len(rec.Stream) == 0 || len(v.rules) == 0 {
		return false
	}
	name := unsafe.String(&rec.Stream[0], len(rec.Stream))
	head, cutOff := v.head(name, rec)
	if cutOff {
		return false
	}
	matches := v.matching(name)
	for i := range v.rules {
		r := &v.rules[i]
		if i < 64 && matches&(1<<i) == 0 || i >= 64 && !r.sel.Match(name) {
			continue
		}
		if rec.Time < r.minTime || r.maxCount > 0 && head >= r.maxCount && rec.Version <= head-r.maxCount {
			return true
		}
	}
	return false
}

// head looks up rec's stream in the heads table: the position of its
// last event, and whether rec lies at or before the stream's cut (a
// truncate or delete removed it).
func (v *view) head(name string, rec *codec.Record) (head uint64, cutOff bool) {
	if v.heads == nil {
		return 0, false
	}
	var vals [headsValues]uint64
	if !v.heads.get(keyOf(name), vals[:]) {
		return 0, false
	}
	if cut, _ := splitCut(vals[2]); rec.Version <= cut {
		return 0, true
	}
	return vals[1], false
}
