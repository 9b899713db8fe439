package local

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// committed reads the current committed end. Everything a reader may see
// lies before it.
func (s *Store) committed() (commitState, error) {
	return readCommit(s.commit)
}

// limit is the byte length of a segment a reader may read under c.
func (s *Store) limit(sf *segFile, c *commitState) (int64, error) {
	if sf.first == c.active {
		return c.size, nil
	}
	st, err := sf.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// offsetOf finds the byte offset of pos in its segment through the
// offsets file, checking the entry against the record it points at. A
// missing or stale entry falls back to a scan of the segment: slower, but
// a derived file is never trusted over the log.
func (s *Store) offsetOf(sf *segFile, pos uint64, c *commitState) (int64, error) {
	if off, _, ok := sf.entry(pos); ok && off >= segmentHeaderSize {
		rec, buf, err := readRecordAt(sf.f, segmentName(sf.first), off, s.buf)
		s.buf = buf
		if err == nil && rec.Position == pos {
			return off, nil
		}
	}
	lim, err := s.limit(sf, c)
	if err != nil {
		return 0, err
	}
	sc := newRecordScanner(sf.f, segmentName(sf.first), segmentHeaderSize, lim, nil)
	for sc.Next() {
		if p := sc.Record().Position; p == pos {
			return sc.Offset(), nil
		} else if p > pos {
			break
		}
	}
	if sc.Err() != nil {
		return 0, sc.Err()
	}
	if sf.gen > 0 {
		return 0, fmt.Errorf("%w: position %d", errCompacted, pos)
	}
	if pos < c.next {
		return 0, &log.CorruptError{File: segmentName(sf.first), Offset: -1, Reason: fmt.Sprintf("committed position %d is not in the segment that should hold it", pos)}
	}
	return 0, fmt.Errorf("%w: position %d", log.ErrNotFound, pos)
}

// errCompacted says a position's event was dropped by compaction (or,
// below the first segment, with its whole segment): it is gone, not
// damaged.
var errCompacted = fmt.Errorf("%w: removed by retention", log.ErrNotFound)

// seekOffset finds the offset of the first record at or after position
// from in sf: from itself, or in a compacted segment the next position
// compaction kept. It returns the segment's limit if there is none.
func (s *Store) seekOffset(sf *segFile, from uint64, c *commitState) (int64, error) {
	if sf.gen == 0 {
		return s.offsetOf(sf, from, c)
	}
	lim, err := s.limit(sf, c)
	if err != nil {
		return 0, err
	}
	if sf.sparse {
		// The next kept record the offsets file lists, checked against
		// the record.
		p, off, err := sf.nextKept(from)
		if err == nil && off == 0 {
			return lim, nil
		}
		if err == nil {
			rec, b, err := readRecordAt(sf.f, segmentName(sf.first), off, s.buf)
			s.buf = b
			if err == nil && rec.Position == p {
				return off, nil
			}
		}
	} else if sf.idx != nil {
		// The next non-empty offsets entry, checked against its record.
		buf := make([]byte, 64*offsetEntrySize)
		for at := int64(from-sf.first) * offsetEntrySize; ; at += int64(len(buf)) {
			n, _ := sf.idx.ReadAt(buf, at)
			n -= n % offsetEntrySize
			for i := 0; i < n; i += offsetEntrySize {
				off := int64(binary.LittleEndian.Uint64(buf[i:]))
				if off < segmentHeaderSize {
					continue
				}
				want := sf.first + uint64(at+int64(i))/offsetEntrySize
				rec, b, err := readRecordAt(sf.f, segmentName(sf.first), off, s.buf)
				s.buf = b
				if err == nil && rec.Position == want {
					return off, nil
				}
				n = 0 // a stale entry: scan instead
				break
			}
			if n < len(buf) {
				break
			}
		}
	}
	sc := newRecordScanner(sf.f, segmentName(sf.first), segmentHeaderSize, lim, nil)
	for sc.Next() {
		if sc.Record().Position >= from {
			return sc.Offset(), nil
		}
	}
	if sc.Err() != nil {
		return 0, sc.Err()
	}
	return lim, nil
}

// recordAt reads the record at a committed position. The record's slices
// alias an internal buffer valid until the next read. The common path is
// two preads: the offsets entry, then the record (checked to be the one
// asked for, so a stale entry falls back to offsetOf's scan).
func (s *Store) recordAt(pos uint64, c *commitState) (codec.Record, error) {
	if pos == 0 || pos >= c.next {
		return codec.Record{}, fmt.Errorf("%w: position %d", log.ErrNotFound, pos)
	}
	first, err := s.segmentFor(pos, c)
	if err != nil {
		return codec.Record{}, err
	}
	sf, err := s.segment(first)
	if err != nil {
		if _, removed := s.removedSegment(first, c); removed {
			return codec.Record{}, fmt.Errorf("%w: position %d", errCompacted, pos)
		}
		return codec.Record{}, err
	}
	if off, _, ok := sf.entry(pos); ok && off >= segmentHeaderSize {
		rec, buf, err := readRecordAt(sf.f, segmentName(first), off, s.buf)
		s.buf = buf
		if err == nil && rec.Position == pos {
			return rec, nil
		}
	} else if ok && sf.gen > 0 {
		return codec.Record{}, fmt.Errorf("%w: position %d", errCompacted, pos)
	}
	off, err := s.offsetOf(sf, pos, c)
	if err != nil {
		return codec.Record{}, err
	}
	rec, buf, err := readRecordAt(sf.f, segmentName(first), off, s.buf)
	s.buf = buf
	return rec, err
}

// ReadAt returns the event at a committed position.
func (s *Store) ReadAt(pos uint64) (codec.Event, error) {
	read, err := s.positionReader()
	if err != nil {
		return codec.Event{}, err
	}
	return read(pos)
}

// positionReader returns a function that reads events by position under
// one committed end and one view of the limits, for a caller that reads
// many (a group's leases).
func (s *Store) positionReader() (func(pos uint64) (codec.Event, error), error) {
	c, err := s.committed()
	if err != nil {
		return nil, err
	}
	v, err := s.view(&c)
	if err != nil {
		return nil, err
	}
	return func(pos uint64) (codec.Event, error) {
		if pos < v.start {
			return codec.Event{}, fmt.Errorf("%w: position %d", errCompacted, pos)
		}
		rec, err := s.recordAt(pos, &c)
		if err != nil {
			return codec.Event{}, err
		}
		if !v.visible(&rec) {
			return codec.Event{}, fmt.Errorf("%w: position %d", errCompacted, pos)
		}
		return rec.Event(), nil
	}, nil
}

// errStop ends an iteration early without error.
var errStop = fmt.Errorf("stop")

// iterate calls fn for every committed record from position from up to
// (excluding) c.next, in position order. The record passed to fn is only
// valid during the call.
func (s *Store) iterate(from uint64, c *commitState, fn func(rec *codec.Record) error) error {
	if from == 0 {
		from = 1
	}
	if from >= c.next {
		return nil
	}
	// Positions before the first segment are gone (compaction removed
	// their segments): start at the first there is.
	if firsts, err := s.segmentList(c); err == nil && from < firsts[0] {
		from = firsts[0]
	}
	first, err := s.segmentFor(from, c)
	if err != nil {
		return err
	}
	// One scan buffer per Store, lent to one iteration at a time.
	buf := s.scanBuf
	s.scanBuf = nil
	defer func() {
		if buf != nil {
			s.scanBuf = buf
		}
	}()
	for {
		sf, err := s.segment(first)
		if err != nil {
			// Compaction may have removed the segment since it was listed:
			// then the log now starts after it.
			next, ok := s.removedSegment(first, c)
			if !ok {
				return err
			}
			first, from = next, max(from, next)
			continue
		}
		lim, err := s.limit(sf, c)
		if err != nil {
			return err
		}
		start := int64(segmentHeaderSize)
		if from > first {
			if start, err = s.seekOffset(sf, from, c); err != nil {
				return err
			}
		}
		sc := newRecordScanner(sf.f, segmentName(first), start, lim, buf)
		buf = sc.buf // returned to the Store however the scan ends
		last := first - 1
		for sc.Next() {
			rec := sc.Record()
			last = rec.Position
			if rec.Position >= c.next {
				return nil
			}
			if err := fn(rec); err != nil {
				if err == errStop {
					return nil
				}
				return err
			}
		}
		if sc.Err() != nil {
			return sc.Err()
		}
		buf = sc.buf
		if first == c.active || sf.gen == 0 && last+1 >= c.next {
			return nil
		}
		var next uint64
		if sf.gen > 0 {
			// Compaction leaves gaps: the next segment is the next one listed.
			next = s.segmentAfter(first, c)
		} else if next, err = s.segmentFor(last+1, c); err != nil {
			return err
		}
		if next <= first {
			return &log.CorruptError{File: segmentName(first), Offset: lim, Reason: fmt.Sprintf("log ends at position %d, committed end is %d", last, c.next-1)}
		}
		first, from = next, next
	}
}

// segmentAfter is the first position of the segment after first, or 0.
func (s *Store) segmentAfter(first uint64, c *commitState) uint64 {
	firsts, err := s.segmentList(c)
	if err != nil {
		return 0
	}
	i := sort.Search(len(firsts), func(i int) bool { return firsts[i] > first })
	if i == len(firsts) {
		return 0
	}
	return firsts[i]
}

// removedSegment reports whether the segment first, which could not be
// opened, was removed by compaction: it lies before the log's first
// segment now. It returns that first segment.
func (s *Store) removedSegment(first uint64, c *commitState) (uint64, bool) {
	s.firsts = nil
	firsts, err := s.segmentList(c)
	if err != nil || len(firsts) == 0 || firsts[0] <= first {
		return 0, false
	}
	return firsts[0], true
}

// Scan calls fn for every committed event from position from, in order,
// and returns the position after the last one it saw. fn's event aliases a
// buffer reused for the next call.
func (s *Store) Scan(from uint64, fn func(rec *codec.Record) error) (uint64, error) {
	c, err := s.committed()
	if err != nil {
		return 0, err
	}
	v, err := s.view(&c)
	if err != nil {
		return 0, err
	}
	from = max(from, v.start)
	err = s.iterate(from, &c, func(rec *codec.Record) error {
		if !v.visible(rec) {
			return nil
		}
		return fn(rec)
	})
	return c.next, err
}
