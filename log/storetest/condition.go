package storetest

import (
	"context"
	"errors"

	"github.com/evtdev/evt/log"
)

// conditional appends evs as one batch under cond. A store that refuses
// conditions (ErrUnsupported) skips the test: it may not ignore one, and
// testCondition checks that it does not.
func (e *env) conditional(s log.Store, cond log.Condition, evs ...ev) ([]log.Result, error) {
	e.t.Helper()
	b := e.batch(evs, nil)
	b.FailIfMatch(cond)
	res, err := s.Append(context.Background(), b)
	if errors.Is(err, log.ErrUnsupported) {
		e.t.Skipf("conditional appends: %v", err)
	}
	return res, err
}

// query parses a --fail-if-match QUERY.
func (e *env) query(s string) log.ConditionQuery {
	e.t.Helper()
	q, err := log.ParseConditionQuery(s)
	if err != nil {
		e.t.Fatalf("ParseConditionQuery(%q): %v", s, err)
	}
	return q
}

// conflicts appends evs under cond and checks that the store refuses the
// batch with ErrConflict and stores nothing of it.
func (e *env) conflicts(s log.Store, cond log.Condition, evs ...ev) {
	e.t.Helper()
	_, next0, err := s.Bounds()
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = e.conditional(s, cond, evs...)
	if !errors.Is(err, log.ErrConflict) {
		e.t.Fatalf("conditional append (%v): %v, want ErrConflict", cond, err)
	}
	if _, next, _ := s.Bounds(); next != next0 {
		e.t.Fatalf("a failed condition stored events: next position %d, was %d", next, next0)
	}
}

// passes appends evs under cond and checks that it succeeds.
func (e *env) passes(s log.Store, cond log.Condition, evs ...ev) []log.Result {
	e.t.Helper()
	res, err := e.conditional(s, cond, evs...)
	if err != nil {
		e.t.Fatalf("conditional append (%v): %v", cond, err)
	}
	return res
}

// testCondition: a conditional append (log.Condition) is stored only if
// no event a query matches lies after the position; a failed one stores
// nothing; what matches is a stream, a glob, types; markers are not
// events, events hidden since still count; retries are not checked.
func testCondition(e *env) {
	e.sub("Matches", func(e *env) {
		// 1 course-7 Created, 2 student-3 Registered, 3 course-8 Created
		e.append(e.s, ev{stream: "course-7", typ: "Created"}, ev{stream: "student-3", typ: "Registered"}, ev{stream: "course-8", typ: "Created"})
		q := []log.ConditionQuery{e.query("course-7"), e.query("student-3")}
		// Nothing after 3: the append passes, and its own events do not
		// count against it.
		e.passes(e.s, log.Condition{Queries: q, After: 3}, ev{stream: "course-7", typ: "Enrolled"}, ev{stream: "student-3", typ: "Enrolled"})
		// 4 and 5 were appended after 3: both queries match now.
		e.conflicts(e.s, log.Condition{Queries: q, After: 3}, ev{stream: "course-7", typ: "Enrolled"})
		e.conflicts(e.s, log.Condition{Queries: q[1:], After: 4}, ev{stream: "course-7", typ: "Enrolled"})
		// Events of other streams after the position do not match.
		e.passes(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-8")}, After: 3}, ev{stream: "course-8", typ: "Enrolled"})
		// Nor do those at or before it.
		e.passes(e.s, log.Condition{Queries: q, After: 5}, ev{stream: "course-9", typ: "Created"})
	})
	e.sub("Types", func(e *env) {
		e.append(e.s, ev{stream: "course-7", typ: "Created"}, ev{stream: "course-7", typ: "Renamed"})
		e.passes(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-7:Enrolled,Left")}, After: 1}, ev{stream: "course-7", typ: "Enrolled"})
		e.conflicts(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-7:Left,Enrolled")}, After: 1}, ev{stream: "course-7", typ: "Enrolled"})
		// The type of an older event after the position, not only the newest.
		e.append(e.s, ev{stream: "course-7", typ: "Renamed"})
		e.conflicts(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-7:Enrolled")}, After: 2}, ev{stream: "course-7", typ: "Enrolled"})
		e.passes(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-7:Enrolled")}, After: 3}, ev{stream: "course-7", typ: "Enrolled"})
	})
	e.sub("Globs", func(e *env) {
		e.append(e.s, ev{stream: "course-7", typ: "Created"}, ev{stream: "student-3", typ: "Registered"})
		e.append(e.s, ev{stream: "room-1", typ: "Booked"})
		e.passes(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-*"), e.query("student-*:Enrolled")}, After: 2}, ev{stream: "course-7", typ: "Enrolled"})
		e.conflicts(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-*:Enrolled")}, After: 2}, ev{stream: "course-7", typ: "Enrolled"})
		e.conflicts(e.s, log.Condition{Queries: []log.ConditionQuery{e.query(":Booked")}, After: 2}, ev{stream: "room-1", typ: "Booked"})
		e.conflicts(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("*")}, After: 3}, ev{stream: "room-1", typ: "Booked"})
		e.passes(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("*")}, After: 4}, ev{stream: "room-1", typ: "Booked"})
	})
	e.sub("Retry", func(e *env) {
		e.append(e.s, ev{stream: "course-7", typ: "Created"})
		cond := log.Condition{Queries: []log.ConditionQuery{e.query("course-7")}, After: 1}
		first := e.passes(e.s, cond, ev{stream: "course-7", typ: "Enrolled", id: "enrol-1"})
		// The same batch again (its answer was lost): its event now
		// matches, but a retry that already succeeded reports the
		// original rather than a conflict.
		again := e.passes(e.s, cond, ev{stream: "course-7", typ: "Enrolled", id: "enrol-1"})
		if len(again) != 1 || !again[0].Duplicate || again[0].Position != first[0].Position {
			e.t.Fatalf("retry: %+v, want the original %+v as a duplicate", again, first)
		}
		// A batch with a new event besides is checked.
		e.conflicts(e.s, cond, ev{stream: "course-7", typ: "Enrolled", id: "enrol-1"}, ev{stream: "course-7", typ: "Enrolled", id: "enrol-2"})
	})
	e.sub("Hidden", func(e *env) {
		e.append(e.s, ev{stream: "course-7", typ: "Created"}, ev{stream: "course-9", typ: "Created"})
		// A delete marker is not an event: it matches nothing.
		if _, err := e.s.Delete(context.Background(), "course-9", log.Expectation{}); err != nil {
			e.t.Fatal(err)
		}
		e.passes(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-9"), e.query("course-*")}, After: 2}, ev{stream: "room-1", typ: "Booked"})
		// An event appended after the position counts though a delete
		// hides it now.
		_, next, err := e.s.Bounds()
		if err != nil {
			e.t.Fatal(err)
		}
		e.append(e.s, ev{stream: "course-7", typ: "Enrolled"})
		if _, err := e.s.Delete(context.Background(), "course-7", log.Expectation{}); err != nil {
			e.t.Fatal(err)
		}
		e.conflicts(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-7")}, After: next - 1}, ev{stream: "room-1", typ: "Booked"})
		e.conflicts(e.s, log.Condition{Queries: []log.ConditionQuery{e.query("course-*:Enrolled")}, After: next - 1}, ev{stream: "room-1", typ: "Booked"})
	})
	e.sub("TwoWriters", func(e *env) {
		// Two writers decided on the same read (nothing after 1); the
		// first to append wins, the second conflicts, though it writes
		// another stream: the boundary spans both.
		e.append(e.s, ev{stream: "course-7", typ: "Created"})
		other := e.another()
		q := []log.ConditionQuery{e.query("course-7:Enrolled"), e.query("student-*:Enrolled")}
		e.passes(e.s, log.Condition{Queries: q, After: 1}, ev{stream: "student-3", typ: "Enrolled"})
		e.conflicts(other, log.Condition{Queries: q, After: 1}, ev{stream: "course-7", typ: "Enrolled"})
	})
	e.sub("Streamed", func(e *env) {
		bw, ok := e.s.(log.BatchWriter)
		if !ok {
			e.t.Skip("the store takes batches only whole")
		}
		e.append(e.s, ev{stream: "course-7", typ: "Created"}, ev{stream: "course-7", typ: "Enrolled"})
		stream := func(after uint64) error {
			cond := &log.Condition{Queries: []log.ConditionQuery{e.query("course-7:Enrolled")}, After: after}
			a, err := bw.BeginAppend(context.Background(), nil, log.Expectation{}, log.AppendOptions{Condition: cond})
			if errors.Is(err, log.ErrUnsupported) {
				e.t.Skipf("conditional appends: %v", err)
			}
			if err != nil {
				return err
			}
			if err := a.Add(e.batch([]ev{{stream: "course-7", typ: "Enrolled"}, {stream: "student-3", typ: "Enrolled"}}, nil)); err != nil {
				a.Abort()
				return err
			}
			_, err = a.Commit()
			return err
		}
		if err := stream(1); !errors.Is(err, log.ErrConflict) {
			e.t.Fatalf("streamed append after a match: %v, want ErrConflict", err)
		}
		if _, next, _ := e.s.Bounds(); next != 3 {
			e.t.Fatalf("a failed condition stored events: next position %d, want 3", next)
		}
		if err := stream(2); err != nil {
			e.t.Fatalf("streamed append: %v", err)
		}
		if _, next, _ := e.s.Bounds(); next != 5 {
			e.t.Fatalf("next position %d after a streamed conditional append, want 5", next)
		}
	})
}
