package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// hang bounds how long a test waits for a read that should end or an
// event that should come: far beyond any store's latency, it only turns
// a hang into a failure. No test asserts how fast anything is.
const hang = time.Minute

// within runs fn in a goroutine and fails the test if it does not
// return within hang. fn reports failures with t.Error, not t.Fatal.
func (e *env) within(what string, fn func()) {
	e.t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(hang):
		e.t.Fatalf("%s: did not end", what)
	}
}

// followed is what a following read yielded before it ended.
type followed struct {
	events []got
	err    error
	after  int // items yielded after the error (must be 0)
}

// follow runs a following read of s until it has n events (then the loop
// stops), the read ends, or ctx is done. onEvent, if not nil, runs after
// each event with the events so far.
func (e *env) follow(ctx context.Context, s log.Store, q log.Query, n int, onEvent func([]got)) followed {
	e.t.Helper()
	var f followed
	e.within("Read "+describe(q), func() {
		for rec, err := range s.Read(ctx, q) {
			if f.err != nil {
				f.after++
				continue
			}
			if err != nil {
				f.err = err
				continue
			}
			f.events = append(f.events, copyRecord(rec))
			if onEvent != nil {
				onEvent(f.events)
			}
			if len(f.events) == n {
				break
			}
		}
	})
	if f.after > 0 {
		e.t.Errorf("Read %s yielded %d items after the error %v", describe(q), f.after, f.err)
	}
	return f
}

// writer appends batches through s in a goroutine once start is closed,
// and reports the first error on the channel it returns (closed when
// done).
func writer(s log.Store, start <-chan struct{}, batches [][]ev) <-chan error {
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		<-start
		for _, evs := range batches {
			var b log.Batch
			for _, x := range evs {
				if err := b.Add(x.stream, x.typ, x.id, []byte("{}"), nil); err != nil {
					errs <- err
					return
				}
			}
			if _, err := s.Append(context.Background(), &b); err != nil {
				errs <- err
				return
			}
		}
	}()
	return errs
}

// testFollow: a following read yields what another writer appends after
// it started, in order, each once, with its selection and types.
func testFollow(e *env) {
	cases := []struct {
		name      string
		selection string
		types     []string
		want      []uint64
	}{
		{"glob", "a-*", nil, []uint64{1, 3, 5, 6, 8}},
		{"types", "", []string{"X"}, []uint64{1, 2, 4, 5, 6, 8}},
		{"stream", "a-1", nil, []uint64{1, 3, 6}},
	}
	for _, c := range cases {
		e.sub(c.name, func(e *env) {
			t := e.t
			e.append(e.s, ev{stream: "a-1", typ: "X"}, ev{stream: "b-1", typ: "X"})
			start := make(chan struct{})
			errs := writer(e.another(), start, [][]ev{
				{{stream: "a-1", typ: "Y"}},                            // 3
				{{stream: "b-1", typ: "X"}},                            // 4
				{{stream: "a-2", typ: "X"}, {stream: "a-1", typ: "X"}}, // 5, 6
				{{stream: "c-1", typ: "Z"}, {stream: "a-3", typ: "X"}}, // 7, 8
			})
			ctx, cancel := context.WithTimeout(context.Background(), hang)
			defer cancel()
			q := log.Query{Selection: sel(t, c.selection), Types: c.types, Follow: true}
			var once bool
			f := e.follow(ctx, e.s, q, len(c.want), func([]got) {
				if !once {
					once = true
					close(start) // the first event is read: now the other writer appends
				}
			})
			if !once {
				close(start)
			}
			if err := <-errs; err != nil {
				t.Fatalf("writer: %v", err)
			}
			if f.err != nil {
				t.Errorf("Read %s: %v after %v", describe(q), f.err, f.events)
			}
			if got := positions(f.events); !slices.Equal(got, c.want) {
				t.Errorf("Read %s yielded %v, want %v", describe(q), got, c.want)
			}
		})
	}
}

// testFollowRace: events appended while the read starts (between its
// look at the committed end and its wait for more) are each yielded
// once, in order.
func testFollowRace(e *env) {
	t := e.t
	const n = 200
	var batches [][]ev
	for i := range n {
		batches = append(batches, []ev{{stream: fmt.Sprintf("s-%d", i%3), typ: "T"}})
	}
	start := make(chan struct{})
	close(start)
	errs := writer(e.another(), start, batches)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	f := e.follow(ctx, e.s, log.Query{Follow: true}, n, nil)
	if err := <-errs; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if f.err != nil {
		t.Errorf("follow: %v after %d events", f.err, len(f.events))
	}
	for i, g := range f.events {
		if g.Position != uint64(i+1) {
			t.Fatalf("event %d at position %d (each once, in order)", i, g.Position)
		}
	}
	if len(f.events) != n {
		t.Errorf("followed %d events, want %d", len(f.events), n)
	}
}

// testFollowMissing: a following read of a stream that does not exist
// is not an error: it waits for the stream.
func testFollowMissing(e *env) {
	t := e.t
	e.append(e.s, ev{stream: "other", typ: "T"})
	start := make(chan struct{})
	close(start)
	errs := writer(e.another(), start, [][]ev{{{stream: "other", typ: "T"}}, {{stream: "later", typ: "T"}}})
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	q := log.Query{Selection: sel(t, "later"), Follow: true}
	f := e.follow(ctx, e.s, q, 1, nil)
	if err := <-errs; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if f.err != nil || len(f.events) != 1 || f.events[0].Stream != "later" || f.events[0].Position != 3 {
		t.Errorf("Read %s: %v, %v; want later@1 at 3", describe(q), f.events, f.err)
	}
}

// testFollowCancel: a following read ends when ctx is done, with ctx's
// error, both while it waits and when the loop body cancels.
func testFollowCancel(e *env) {
	t := e.t
	e.append(e.s, ev{stream: "a", typ: "T"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := log.Query{Follow: true}
	f := e.follow(ctx, e.s, q, 0, func([]got) { cancel() })
	if len(f.events) != 1 {
		t.Errorf("cancelled in the body: %d events, want 1", len(f.events))
	}
	wantErr(t, "follow cancelled in the body", f.err, context.Canceled)

	// Waiting at the end when the deadline passes.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	q = log.Query{Follow: true, From: codec.Cursor{Kind: codec.CursorEnd}}
	f = e.follow(ctx, e.s, q, 0, nil)
	if len(f.events) != 0 {
		t.Errorf("follow from the end with no writer: %v", f.events)
	}
	wantErr(t, "follow past its deadline", f.err, context.DeadlineExceeded)
}

// testFollowIdle: Idle ends a following read cleanly once it passes
// without a selected event.
func testFollowIdle(e *env) {
	t := e.t
	e.append(e.s, ev{stream: "a", typ: "T"}, ev{stream: "b", typ: "T"})
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	q := log.Query{Selection: sel(t, "a"), Follow: true, Idle: 100 * time.Millisecond}
	f := e.follow(ctx, e.s, q, 0, nil)
	if f.err != nil {
		t.Errorf("idle follow ended with %v, want a clean end", f.err)
	}
	if ctx.Err() != nil {
		t.Errorf("idle follow ended only with its context")
	}
	if got := positions(f.events); !slices.Equal(got, []uint64{1}) {
		t.Errorf("idle follow yielded %v, want [1]", got)
	}
}

// testFollowBreak: a loop that stops ends a following read, and the
// store stays usable.
func testFollowBreak(e *env) {
	t := e.t
	e.append(e.s, ev{stream: "a", typ: "T"}, ev{stream: "a", typ: "T"})
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	f := e.follow(ctx, e.s, log.Query{Follow: true}, 1, nil)
	if f.err != nil || len(f.events) != 1 {
		t.Errorf("follow stopped after one: %v, %v", f.events, f.err)
	}
	res := e.append(e.s, ev{stream: "a", typ: "T"})
	if res[0].Position != 3 {
		t.Errorf("append after a stopped follow at %d, want 3", res[0].Position)
	}
	if ctx.Err() != nil {
		t.Errorf("the read ended by its context, not by the loop")
	}
	if errors.Is(f.err, context.DeadlineExceeded) {
		t.Errorf("the read ended by its deadline")
	}
}

// testFollowCaughtUp: with Follow, CaughtUp is called once the read has
// yielded every selected event committed so far (a follower flushes its
// output there), again after it yields what a later append commits, and
// its error ends the read with it.
func testFollowCaughtUp(e *env) {
	t := e.t
	e.append(e.s, ev{stream: "a", typ: "T"}, ev{stream: "b", typ: "T"}, ev{stream: "a", typ: "U"})
	other := e.another()
	stop := errors.New("stop here")
	yielded := 0
	var calls []int
	q := log.Query{Follow: true, Types: []string{"T"}}
	q.CaughtUp = func() error {
		calls = append(calls, yielded)
		switch yielded {
		case 2:
			if len(calls) == 1 {
				e.append(other, ev{stream: "c", typ: "T"})
			}
		case 3:
			return stop
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	var err error
	e.within("Read "+describe(q), func() {
		for _, rerr := range e.s.Read(ctx, q) {
			if rerr != nil {
				err = rerr
				break
			}
			yielded++
		}
	})
	wantErr(t, "CaughtUp's error", err, stop)
	if yielded != 3 || len(calls) < 2 || calls[0] != 2 || calls[len(calls)-1] != 3 {
		t.Errorf("CaughtUp called with %v events yielded (of 3); want first at 2, last at 3", calls)
	}
	for _, n := range calls {
		if n != 2 && n != 3 {
			t.Errorf("CaughtUp called with %d events yielded, while 2 or 3 were committed: %v", n, calls)
		}
	}
}
