package local

import (
	"errors"
	"fmt"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// checkCondition checks the batch's condition (log.Condition) against
// the committed log before the batch. It runs in Commit, under the
// append lock, so no writer can store an event between the check and the
// batch.
//
// The cost is that of the events after After that could match, never
// the log's:
//   - a query for one stream is one heads-table lookup (the stream's last
//     event is at or before After: no match, the common case), then, with
//     types, a walk back along the stream's back-pointers over its events
//     after After;
//   - a glob, or every stream, scans the log from After+1, stopping at the
//     first match: O(events after After). (There is no index by category
//     to narrow it; a decision's read is normally recent.)
//
// The walk and the scan read the raw log, not the view of the limits: an
// event appended after After counts even if a cut or retention hides it
// now. Compaction keeps every stream's newest record, so a query without
// types still sees a stream whose events after After were all reclaimed;
// with types, an event compaction reclaimed no longer counts.
func (a *Appender) checkCondition() error {
	cond := a.cond
	if cond == nil || cond.After+1 >= a.c.next {
		return nil // nothing was appended after After
	}
	var globs []log.ConditionQuery
	for _, q := range cond.Queries {
		name, single := q.Selection.Stream()
		if !single {
			globs = append(globs, q)
			continue
		}
		if err := a.checkStream(q, name, cond.After); err != nil {
			return err
		}
	}
	if len(globs) == 0 {
		return nil
	}
	var found *log.MatchError
	err := a.s.iterate(cond.After+1, &a.c, func(rec *codec.Record) error {
		if rec.Marker() {
			return nil
		}
		for _, q := range globs {
			if q.Matches(string(rec.Stream), string(rec.Type)) {
				found = &log.MatchError{Query: q, After: cond.After, Position: rec.Position, Stream: string(rec.Stream), Type: string(rec.Type)}
				return errStop
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if found != nil {
		return found
	}
	return nil
}

// checkStream checks one query of a single stream: its head from the
// heads table (brought to the committed end by prepare; the batch's own
// events are not in it before Commit publishes), then its events after
// after, newest first, when the query names types.
func (a *Appender) checkStream(q log.ConditionQuery, name string, after uint64) error {
	var vals [headsValues]uint64
	if !a.s.heads.get(keyOf(name), vals[:]) || vals[0] <= after {
		return nil
	}
	for pos := vals[0]; pos > after; {
		rec, err := a.s.recordAt(pos, &a.c)
		if errors.Is(err, errCompacted) || errors.Is(err, log.ErrNotFound) {
			return nil // reclaimed by compaction, and so is what came before it
		}
		if err != nil {
			return err
		}
		if string(rec.Stream) != name {
			return &log.CorruptError{File: headsFile, Offset: -1, Reason: fmt.Sprintf("stream %s: back-pointer at position %d names an event of %q (run evt verify)", name, pos, rec.Stream)}
		}
		if q.Matches(name, string(rec.Type)) {
			return &log.MatchError{Query: q, After: after, Position: rec.Position, Stream: name, Type: string(rec.Type)}
		}
		pos = rec.Prev
	}
	return nil
}
