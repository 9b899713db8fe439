package log

import (
	"encoding/binary"
	"fmt"

	"github.com/evtdev/evt/codec"
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
	if sf.idx != nil {
		var e [offsetEntrySize]byte
		if n, _ := sf.idx.ReadAt(e[:], int64(pos-sf.first)*offsetEntrySize); n == offsetEntrySize {
			off := int64(binary.LittleEndian.Uint64(e[:]))
			if off >= segmentHeaderSize {
				rec, buf, err := readRecordAt(sf.f, segmentName(sf.first), off, s.buf)
				s.buf = buf
				if err == nil && rec.Position == pos {
					return off, nil
				}
			}
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
	if pos < c.next {
		return 0, &CorruptError{File: segmentName(sf.first), Offset: -1, Reason: fmt.Sprintf("committed position %d is not in the segment that should hold it", pos)}
	}
	return 0, fmt.Errorf("%w: position %d", ErrNotFound, pos)
}

// recordAt reads the record at a committed position. The record's slices
// alias an internal buffer valid until the next read. The common path is
// two preads: the offsets entry, then the record (checked to be the one
// asked for, so a stale entry falls back to offsetOf's scan).
func (s *Store) recordAt(pos uint64, c *commitState) (codec.Record, error) {
	if pos == 0 || pos >= c.next {
		return codec.Record{}, fmt.Errorf("%w: position %d", ErrNotFound, pos)
	}
	first, err := s.segmentFor(pos, c)
	if err != nil {
		return codec.Record{}, err
	}
	sf, err := s.segment(first)
	if err != nil {
		return codec.Record{}, err
	}
	if sf.idx != nil {
		var e [offsetEntrySize]byte
		if n, _ := sf.idx.ReadAt(e[:], int64(pos-sf.first)*offsetEntrySize); n == offsetEntrySize {
			if off := int64(binary.LittleEndian.Uint64(e[:])); off >= segmentHeaderSize {
				rec, buf, err := readRecordAt(sf.f, segmentName(first), off, s.buf)
				s.buf = buf
				if err == nil && rec.Position == pos {
					return rec, nil
				}
			}
		}
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
	c, err := s.committed()
	if err != nil {
		return codec.Event{}, err
	}
	rec, err := s.recordAt(pos, &c)
	if err != nil {
		return codec.Event{}, err
	}
	return rec.Event(), nil
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
			return err
		}
		lim, err := s.limit(sf, c)
		if err != nil {
			return err
		}
		start := int64(segmentHeaderSize)
		if from > first {
			if start, err = s.offsetOf(sf, from, c); err != nil {
				return err
			}
		}
		sc := newRecordScanner(sf.f, segmentName(first), start, lim, buf)
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
		if first == c.active || last+1 >= c.next {
			return nil
		}
		next, err := s.segmentFor(last+1, c)
		if err != nil {
			return err
		}
		if next <= first {
			return &CorruptError{File: segmentName(first), Offset: lim, Reason: fmt.Sprintf("log ends at position %d, committed end is %d", last, c.next-1)}
		}
		first, from = next, next
	}
}

// Scan calls fn for every committed event from position from, in order,
// and returns the position after the last one it saw. fn's event aliases a
// buffer reused for the next call.
func (s *Store) Scan(from uint64, fn func(rec *codec.Record) error) (uint64, error) {
	c, err := s.committed()
	if err != nil {
		return 0, err
	}
	err = s.iterate(from, &c, fn)
	return c.next, err
}
