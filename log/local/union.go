package local

import (
	"errors"
	"fmt"
	"slices"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// unionStreams returns the streams of a selection that is a union of
// single streams (`evt tail course-7 student-3`, the read of a
// conditional append's decision), which Read answers from the streams'
// back-pointers rather than by scanning the log.
func (r *queryReader) unionStreams() ([]string, bool) {
	parts := r.q.Selection.Parts()
	if len(parts) < 2 {
		return nil, false
	}
	names := make([]string, len(parts))
	for i, p := range parts {
		name, ok := p.Stream()
		if !ok {
			return nil, false
		}
		names[i] = name
	}
	return names, true
}

// readUnion yields the selected events of streams after position after
// and before r.next (the end read when the read started, which following
// continues from), in position order; with n > 0 only the last n of
// them. Each stream's events are found by walking its back-pointers from
// its head, newest first, so the cost is that of the streams' events
// after after (for -N: at most n of each), never the log's; a stream that
// does not exist has none.
func (r *queryReader) readUnion(streams []string, after, n uint64) error {
	var positions []uint64
	for _, name := range streams {
		found, err := r.streamPositions(name, after, n)
		if err != nil {
			return err
		}
		positions = append(positions, found...)
	}
	slices.Sort(positions)
	if n > 0 && uint64(len(positions)) > n {
		positions = positions[uint64(len(positions))-n:]
	}
	c, err := r.s.committed()
	if err != nil {
		return err
	}
	for _, pos := range positions {
		rec, err := r.s.recordAt(pos, &c)
		if err != nil {
			return err
		}
		if err := r.deliver(&rec); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// streamPositions returns, newest first, the positions of stream's
// retained events of the query's types after after and before r.next, at
// most n of them (0: all).
func (r *queryReader) streamPositions(stream string, after, n uint64) ([]uint64, error) {
	info, c, view, err := r.s.head(stream)
	if errors.Is(err, log.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint64
	pos := info.Last
	for v := info.Version; v > info.Cut && pos > after && pos >= view.start; v-- {
		if n > 0 && uint64(len(out)) >= n {
			break
		}
		rec, err := r.s.recordAt(pos, &c)
		if errors.Is(err, errCompacted) {
			break // compaction dropped it, and so everything before it
		}
		if err != nil {
			return nil, err
		}
		if string(rec.Stream) != stream || rec.Version != v {
			first, _ := r.s.segmentFor(pos, &c)
			return nil, &log.CorruptError{File: segmentName(first), Offset: -1, Reason: fmt.Sprintf("stream %s: back-pointer chain broken at position %d (run evt verify)", stream, pos)}
		}
		if !view.visible(&rec) {
			break // limits remove a prefix of a stream
		}
		if pos < r.next && r.matchType(&rec) {
			out = append(out, pos)
		}
		pos = rec.Prev
	}
	return out, nil
}

// matchType reports whether rec is of one of the query's types.
func (r *queryReader) matchType(rec *codec.Record) bool {
	return r.types == nil || r.types[string(rec.Type)]
}
