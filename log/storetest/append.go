package storetest

import (
	"context"
	"fmt"
	"time"

	"github.com/evtdev/evt/log"
)

// testResults: a result says where each event went, and a read gives
// back what was added.
func testResults(e *env) {
	t := e.t
	res := e.append(e.s,
		ev{stream: "acct-1", typ: "Opened", id: "given-1", data: `{"owner":"ann"}`, meta: `{"corr":"c-1"}`},
		ev{stream: "acct-1", typ: "Deposited", data: `{"amount":5}`},
		ev{stream: "acct-2", typ: "Opened", data: `[1,2]`},
	)
	want := []struct {
		pos     uint64
		stream  string
		version uint64
	}{{1, "acct-1", 1}, {2, "acct-1", 2}, {3, "acct-2", 1}}
	for i, r := range res {
		w := want[i]
		if r.Position != w.pos || r.Stream != w.stream || r.Version != w.version || r.Duplicate {
			t.Errorf("result %d: %+v, want %d %s@%d not duplicate", i, r, w.pos, w.stream, w.version)
		}
		if r.Time.IsZero() {
			t.Errorf("result %d: no time", i)
		}
		if r.ID == "" {
			t.Errorf("result %d: no id", i)
		}
	}
	if res[0].ID != "given-1" {
		t.Errorf("given id: result id %q", res[0].ID)
	}
	if res[1].ID == res[2].ID {
		t.Errorf("generated ids are equal: %q", res[1].ID)
	}
	out := e.readOK(e.s, log.Query{})
	if len(out) != 3 {
		t.Fatalf("read %d events, want 3: %v", len(out), out)
	}
	wantData := []struct{ typ, data, meta string }{
		{"Opened", `{"owner":"ann"}`, `{"corr":"c-1"}`},
		{"Deposited", `{"amount":5}`, ""},
		{"Opened", `[1,2]`, ""},
	}
	for i, g := range out {
		w := wantData[i]
		if g.Type != w.typ || g.Data != w.data || g.Meta != w.meta {
			t.Errorf("event %d: type %q data %s meta %q, want %q %s %q", i, g.Type, g.Data, g.Meta, w.typ, w.data, w.meta)
		}
		if g.ID != res[i].ID || g.Time != res[i].Time.UnixNano() || g.Position != res[i].Position || g.Version != res[i].Version {
			t.Errorf("event %d: %v id %q time %d, but its result says %+v", i, g, g.ID, g.Time, res[i])
		}
	}
}

// testTimes: times never decrease along the log, and AddAt keeps a time
// it is given unless that would go back.
func testTimes(e *env) {
	t := e.t
	t0 := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	res := e.append(e.s,
		ev{stream: "s", typ: "T", at: t0},
		ev{stream: "s", typ: "T", at: t0.Add(time.Second)},
	)
	if !res[0].Time.Equal(t0) || !res[1].Time.Equal(t0.Add(time.Second)) {
		t.Errorf("AddAt into a new store: times %v, %v, want %v, %v", res[0].Time, res[1].Time, t0, t0.Add(time.Second))
	}
	// Older than the newest: stored at the newest time.
	res = e.append(e.s, ev{stream: "s", typ: "T", at: t0.Add(-time.Hour)})
	if !res[0].Time.Equal(t0.Add(time.Second)) {
		t.Errorf("AddAt older than the log's newest: time %v, want %v", res[0].Time, t0.Add(time.Second))
	}
	before := time.Now()
	for range 3 {
		e.append(e.s, ev{stream: "s", typ: "T"}, ev{stream: "r", typ: "T"})
	}
	res = e.append(e.s, ev{stream: "s", typ: "T"})
	if res[0].Time.Before(before.Add(-time.Minute)) {
		t.Errorf("an append now is stored at %v, long before %v", res[0].Time, before)
	}
	out := e.readOK(e.s, log.Query{})
	if len(out) != 10 {
		t.Fatalf("read %d events, want 10", len(out))
	}
	for i := 1; i < len(out); i++ {
		if out[i].Time < out[i-1].Time {
			t.Errorf("time goes back: %v at %d, %v at %d", time.Unix(0, out[i-1].Time), out[i-1].Position, time.Unix(0, out[i].Time), out[i].Position)
		}
	}
}

// conflict appends a batch that must fail with ErrConflict and checks
// that nothing of it was stored.
func (e *env) conflict(what string, evs []ev, expect map[string]log.Expectation) {
	e.t.Helper()
	_, next0, err := e.s.Bounds()
	if err != nil {
		e.t.Fatal(err)
	}
	heads0, err := e.s.Streams(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.s.Append(context.Background(), e.batch(evs, expect))
	wantErr(e.t, what, err, log.ErrConflict)
	if len(res) != 0 {
		e.t.Errorf("%s: %d results with the error", what, len(res))
	}
	e.unchanged(what, next0, heads0)
}

// unchanged fails unless the log still ends at next0 with heads0.
func (e *env) unchanged(what string, next0 uint64, heads0 []log.StreamInfo) {
	e.t.Helper()
	_, next, err := e.s.Bounds()
	if err != nil {
		e.t.Fatal(err)
	}
	if next != next0 {
		e.t.Errorf("%s: the log moved from next %d to %d", what, next0, next)
	}
	heads, err := e.s.Streams(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if fmt.Sprint(heads) != fmt.Sprint(heads0) {
		e.t.Errorf("%s: streams changed:\n%v\nwant\n%v", what, heads, heads0)
	}
}

// testExpect: each kind of expectation passes and fails where it should,
// against the stream's version before the batch.
func testExpect(e *env) {
	t := e.t
	ok := func(what string, evs []ev, expect map[string]log.Expectation) []log.Result {
		t.Helper()
		res, err := e.s.Append(context.Background(), e.batch(evs, expect))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return res
	}
	one := func(stream string) []ev { return []ev{{stream: stream, typ: "T"}} }
	x := func(stream string, kind log.ExpectKind, v uint64) map[string]log.Expectation {
		return map[string]log.Expectation{stream: {Kind: kind, Version: v}}
	}

	ok("none on a new stream", one("n"), x("n", log.ExpectNone, 0))
	e.conflict("none on a stream at version 1", one("n"), x("n", log.ExpectNone, 0))
	e.conflict("exists on a new stream", one("m"), x("m", log.ExpectExists, 0))
	ok("exists on a stream at version 1", one("n"), x("n", log.ExpectExists, 0))
	ok("any", one("n"), x("n", log.ExpectAny, 0))
	e.conflict("version 2 on a stream at 3", one("n"), x("n", log.ExpectVersion, 2))
	e.conflict("version 4 on a stream at 3", one("n"), x("n", log.ExpectVersion, 4))
	res := ok("version 3 on a stream at 3, three events", []ev{{stream: "n", typ: "T"}, {stream: "n", typ: "T"}, {stream: "n", typ: "T"}},
		x("n", log.ExpectVersion, 3))
	if res[2].Version != 6 {
		t.Errorf("three events after version 3: last at version %d, want 6", res[2].Version)
	}
	// An expectation on a stream the batch has no event of still holds
	// the batch: a check on one stream guarding a write to another.
	e.conflict("version 5 of n guarding an event of o", one("o"), x("n", log.ExpectVersion, 5))
	ok("version 6 of n guarding an event of o", one("o"), x("n", log.ExpectVersion, 6))
	e.conflict("none on n guarding nothing", nil, x("n", log.ExpectNone, 0))
}

// testAtomic: a batch is stored whole or not at all.
func testAtomic(e *env) {
	t := e.t
	e.append(e.s, ev{stream: "a", typ: "T"}, ev{stream: "b", typ: "T"})
	// Good expectation on a, bad on b: neither stream gets anything.
	e.conflict("a at 1 and b at 7", []ev{{stream: "a", typ: "T"}, {stream: "c", typ: "T"}, {stream: "b", typ: "T"}, {stream: "a", typ: "T"}},
		map[string]log.Expectation{"a": {Kind: log.ExpectVersion, Version: 1}, "b": {Kind: log.ExpectVersion, Version: 7}})
	if _, err := e.s.Head("c"); err == nil {
		t.Errorf("a failed batch created stream c")
	}
	// A context already done stores nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, next0, _ := e.s.Bounds()
	heads0, _ := e.s.Streams(nil)
	_, err := e.s.Append(ctx, e.batch([]ev{{stream: "a", typ: "T"}, {stream: "d", typ: "T"}}, nil))
	wantErr(t, "append with a cancelled context", err, context.Canceled)
	e.unchanged("append with a cancelled context", next0, heads0)
	// And a good batch after them lands at the next position.
	res := e.append(e.s, ev{stream: "a", typ: "T"}, ev{stream: "b", typ: "T"})
	if res[0].Position != 3 || res[0].Version != 2 || res[1].Position != 4 || res[1].Version != 2 {
		t.Errorf("after failed batches: %+v", res)
	}
}

// testIdempotent: an id the stream holds is not stored again; the retry
// gets the original's result with Duplicate set.
func testIdempotent(e *env) {
	t := e.t
	first := e.append(e.s, ev{stream: "s", typ: "T", id: "id-1"}, ev{stream: "s", typ: "T", id: "id-2"})
	retry := e.append(e.s, ev{stream: "s", typ: "T", id: "id-1"}, ev{stream: "s", typ: "T", id: "id-2"})
	for i := range retry {
		r, f := retry[i], first[i]
		if !r.Duplicate || r.Position != f.Position || r.Version != f.Version || r.ID != f.ID || r.Stream != f.Stream {
			t.Errorf("retry %d: %+v, want the original %+v as a duplicate", i, r, f)
		}
	}
	// Part retry, part new: only the new one is stored, next in line.
	mixed := e.append(e.s, ev{stream: "s", typ: "T", id: "id-3"}, ev{stream: "s", typ: "T", id: "id-2"})
	if mixed[0].Duplicate || mixed[0].Position != 3 || mixed[0].Version != 3 {
		t.Errorf("new id after a retry: %+v, want 3 s@3", mixed[0])
	}
	if !mixed[1].Duplicate || mixed[1].Position != 2 {
		t.Errorf("retried id-2: %+v, want the duplicate of position 2", mixed[1])
	}
	// Twice in one batch: stored once, the second reports the first.
	within := e.append(e.s, ev{stream: "s", typ: "T", id: "id-4"}, ev{stream: "s", typ: "T", id: "id-4"}, ev{stream: "s", typ: "T"})
	if within[0].Duplicate || within[0].Position != 4 {
		t.Errorf("first id-4: %+v", within[0])
	}
	if !within[1].Duplicate || within[1].Position != 4 || within[1].Version != 4 {
		t.Errorf("second id-4 of the batch: %+v, want the duplicate of 4 s@4", within[1])
	}
	if within[2].Position != 5 || within[2].Version != 5 {
		t.Errorf("event after the duplicate: %+v, want 5 s@5", within[2])
	}
	// Ids are per stream: another stream may hold the same id.
	other := e.append(e.s, ev{stream: "t", typ: "T", id: "id-1"})
	if other[0].Duplicate || other[0].Position != 6 {
		t.Errorf("id-1 in another stream: %+v, want a new event at 6", other[0])
	}
	// A retry that carries its original expectation is a duplicate, not
	// a conflict: it already succeeded.
	once := map[string]log.Expectation{"u": {Kind: log.ExpectNone}}
	res, err := e.s.Append(context.Background(), e.batch([]ev{{stream: "u", typ: "T", id: "u-1"}}, once))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.s.Append(context.Background(), e.batch([]ev{{stream: "u", typ: "T", id: "u-1"}}, once))
	if err != nil {
		t.Fatalf("retry with its expectation (none): %v", err)
	}
	if len(again) != 1 || !again[0].Duplicate || again[0].Position != res[0].Position {
		t.Errorf("retry with its expectation: %+v, want the duplicate of %+v", again, res[0])
	}
	out := e.readOK(e.s, log.Query{})
	if len(out) != 7 {
		t.Errorf("read %d events, want 7 (each id once): %v", len(out), out)
	}
	for i, g := range out {
		if g.Position != uint64(i+1) {
			t.Errorf("event %d at position %d", i, g.Position)
		}
	}
}

// testTwoWriters: two handles appending at once share one dense log.
func testTwoWriters(e *env) {
	t := e.t
	other := e.another()
	const n = 40
	errs := make(chan error, 2)
	write := func(s log.Store, stream string) {
		for i := range n {
			var b log.Batch
			if err := b.Add(stream, "T", "", []byte(fmt.Sprintf(`{"i":%d}`, i)), nil); err != nil {
				errs <- err
				return
			}
			if err := b.Add("shared", "T", "", []byte(`{}`), nil); err != nil {
				errs <- err
				return
			}
			if _, err := s.Append(context.Background(), &b); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}
	go write(e.s, "one")
	go write(other, "two")
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	out := e.readOK(e.s, log.Query{})
	if len(out) != 4*n {
		t.Fatalf("read %d events, want %d", len(out), 4*n)
	}
	versions := map[string]uint64{}
	for i, g := range out {
		versions[g.Stream]++
		if g.Position != uint64(i+1) || g.Version != versions[g.Stream] {
			t.Fatalf("event %d: %v, want position %d version %d", i, g, i+1, versions[g.Stream])
		}
		if i%2 == 1 && (g.Stream != "shared" || out[i-1].Stream == "shared") {
			t.Fatalf("batches interleave at %d: %v then %v", i, out[i-1], g)
		}
	}
	info, err := other.Head("one")
	if err != nil || info.Version != n {
		t.Errorf("the other handle's head of one: %+v, %v; want version %d", info, err, n)
	}
}
