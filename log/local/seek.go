package local

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// Bounds returns the first retained position and the committed end (the
// position the next event will get). An empty store has first == next.
// Positions before first are gone: their segments were removed, or
// max-bytes removes them. (Other limits leave gaps after first.)
func (s *Store) Bounds() (first, next uint64, err error) {
	c, err := s.committed()
	if err != nil {
		return 0, 0, err
	}
	v, err := s.view(&c)
	if err != nil {
		return 0, 0, err
	}
	return v.start, c.next, nil
}

// segmentList returns the first positions of the segments up to the
// active one, listing the directory again only when it has changed.
func (s *Store) segmentList(c *commitState) ([]uint64, error) {
	if len(s.firsts) == 0 || s.firsts[len(s.firsts)-1] < c.active {
		firsts, err := listSegments(s.fsys, s.dir)
		if err != nil {
			return nil, err
		}
		s.firsts = firsts
	}
	i := sort.Search(len(s.firsts), func(i int) bool { return s.firsts[i] > c.active })
	if i == 0 {
		return nil, &log.CorruptError{File: segmentName(c.active), Offset: -1, Reason: "segment file is missing"}
	}
	return s.firsts[:i], nil
}

// PositionAt returns the first position whose event was appended at or
// after t, or the committed end if there is none. Times never decrease
// along the log, so this is a binary search: over the segments by the
// time of their first event, then over one segment's offsets file; a
// few 16-byte reads, O(log segments + log events in a segment).
func (s *Store) PositionAt(t time.Time) (uint64, error) {
	c, err := s.committed()
	if err != nil {
		return 0, err
	}
	firsts, err := s.segmentList(&c)
	if err != nil {
		return 0, err
	}
	want := t.UnixNano()
	// ends[i] is one past the last position of segment i.
	end := func(i int) uint64 {
		if i+1 < len(firsts) {
			return firsts[i+1]
		}
		return c.next
	}
	var terr error
	timeOfPos := func(first, pos uint64) int64 {
		sf, err := s.segment(first)
		if err != nil {
			terr = err
			return 0
		}
		tm, err := s.timeAt(sf, pos, &c)
		if err != nil {
			terr = err
		}
		return tm
	}
	// The last segment whose first event is before t holds the answer,
	// or the answer is that segment's end.
	i := sort.Search(len(firsts), func(i int) bool {
		return firsts[i] >= end(i) || timeOfPos(firsts[i], firsts[i]) >= want
	}) - 1
	if terr != nil {
		return 0, terr
	}
	if i < 0 {
		return firsts[0], nil
	}
	first, n := firsts[i], end(i)-firsts[i]
	k := sort.Search(int(n), func(k int) bool { return timeOfPos(first, first+uint64(k)) >= want })
	if terr != nil {
		return 0, terr
	}
	return first + uint64(k), nil
}

// timeAt reads the time of a committed position from its segment's
// offsets file, checked against the record when the entry looks wrong.
func (s *Store) timeAt(sf *segFile, pos uint64, c *commitState) (int64, error) {
	// A compacted segment keeps times for the positions it dropped (no
	// later than theirs), so the search still sees times in order.
	if off, t, ok := sf.entry(pos); ok && (off >= segmentHeaderSize || sf.gen > 0) {
		return t, nil
	}
	rec, err := s.recordAt(pos, c)
	if err != nil {
		return 0, err
	}
	return rec.Time, nil
}

// ReadStream calls fn for the events of stream from version from on
// (1 = all), oldest first, up to the committed end, and returns the
// stream's last version. It finds them through the heads table and the
// records' back-pointers, so it costs O(events read), whatever the size
// of the store. A stream that does not exist is ErrNotFound.
func (s *Store) ReadStream(stream string, from uint64, fn func(rec *codec.Record) error) (uint64, error) {
	info, c, view, err := s.head(stream)
	if err != nil {
		return 0, err
	}
	if from == 0 {
		from = 1
	}
	from = max(from, info.Cut+1)
	if from > info.Version {
		return info.Version, nil
	}
	// Walk back from the head along the back-pointers, keeping copies of
	// the records (up to readStreamCache bytes; past that only positions,
	// and those records are read again), then deliver them oldest first.
	n := info.Version - from + 1
	positions := make([]uint64, 0, n)
	var kept []codec.Record
	keptBytes := 0
	pos := info.Last
	for v := info.Version; v >= from && pos >= view.start; v-- {
		rec, err := s.recordAt(pos, &c)
		if errors.Is(err, errCompacted) {
			break // compaction dropped it, and so everything before it
		}
		if err != nil {
			return 0, err
		}
		if string(rec.Stream) != stream || rec.Version != v {
			first, _ := s.segmentFor(pos, &c)
			return 0, &log.CorruptError{File: segmentName(first), Offset: -1, Reason: fmt.Sprintf("stream %s: back-pointer chain broken at position %d (run evt verify)", stream, pos)}
		}
		if !view.visible(&rec) {
			break // limits remove a prefix of a stream
		}
		positions = append(positions, pos)
		if keptBytes+rec.Size <= readStreamCache {
			kept = append(kept, copyRecord(&rec))
			keptBytes += rec.Size
		}
		pos = rec.Prev
	}
	// kept holds the newest records; positions[len(kept):] must be re-read.
	for i := len(positions) - 1; i >= 0; i-- {
		var rec codec.Record
		if i < len(kept) {
			rec = kept[i]
		} else {
			var err error
			if rec, err = s.recordAt(positions[i], &c); err != nil {
				return 0, err
			}
		}
		if err := fn(&rec); err != nil {
			if err == errStop {
				break
			}
			return 0, err
		}
	}
	return info.Version, nil
}

// readStreamCache bounds the records ReadStream keeps from its backward
// walk, so reading a huge stream stays within constant memory.
const readStreamCache = 16 << 20

func copyRecord(rec *codec.Record) codec.Record {
	c := *rec
	b := make([]byte, 0, len(rec.Stream)+len(rec.Type)+len(rec.ID)+len(rec.Data)+len(rec.Metadata))
	take := func(p []byte) []byte {
		start := len(b)
		b = append(b, p...)
		return b[start:len(b):len(b)]
	}
	c.Stream, c.Type, c.ID, c.Data = take(rec.Stream), take(rec.Type), take(rec.ID), take(rec.Data)
	if rec.Metadata != nil {
		c.Metadata = take(rec.Metadata)
	}
	return c
}

// ErrStop, returned by a callback, ends a read early without error.
var ErrStop = errStop
