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

// versions lists the versions of evs.
func versions(evs []got) []uint64 {
	out := make([]uint64, 0, len(evs))
	for _, g := range evs {
		out = append(out, g.Version)
	}
	return out
}

// state is what the suite compares of the log before and after a call
// that must change nothing.
func (e *env) state() (uint64, []log.StreamInfo) {
	e.t.Helper()
	_, next, err := e.s.Bounds()
	if err != nil {
		e.t.Fatal(err)
	}
	heads, err := e.s.Streams(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return next, heads
}

// testDelete: a delete cuts every event of a stream off at once; the
// stream reads as not found; a later append continues its versions;
// expectations apply to the delete and after it.
func testDelete(e *env) {
	t := e.t
	e.append(e.s, ev{stream: "s", typ: "T"}, ev{stream: "s", typ: "T"}, ev{stream: "s", typ: "T"}, ev{stream: "t", typ: "T"})
	_, err := e.s.Delete(context.Background(), "missing", log.Expectation{})
	wantErr(t, "Delete of a missing stream", err, log.ErrNotFound)
	next0, heads0 := e.state()
	_, err = e.s.Delete(context.Background(), "s", log.Expectation{Kind: log.ExpectVersion, Version: 2})
	wantErr(t, "Delete of s at 3 expecting 2", err, log.ErrConflict)
	e.unchanged("a delete that failed its expectation", next0, heads0)

	res, err := e.s.Delete(context.Background(), "s", log.Expectation{Kind: log.ExpectVersion, Version: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Position != 5 {
		t.Errorf("Delete: marker at %d, want 5 (the next position)", res.Position)
	}
	if _, next, _ := e.s.Bounds(); next != 6 {
		t.Errorf("Bounds after the delete: next %d, want 6 (the marker takes a position)", next)
	}
	_, err = e.s.Head("s")
	wantErr(t, "Head of a deleted stream", err, log.ErrNotFound)
	if heads, _ := e.s.Streams(nil); len(heads) != 1 || heads[0].Stream != "t" {
		t.Errorf("Streams after deleting s: %+v, want t alone", heads)
	}
	_, err = e.read(e.s, log.Query{Selection: sel(t, "s")})
	wantErr(t, "Read of a deleted stream", err, log.ErrNotFound)
	if got := positions(e.readOK(e.s, log.Query{})); !slices.Equal(got, []uint64{4}) {
		t.Errorf("Read everything after the delete: %v, want [4] (no cut event, no marker)", got)
	}
	if got := e.readOK(e.s, log.Query{From: codec.Cursor{Kind: codec.CursorPosition, N: 5}}); len(got) != 0 {
		t.Errorf("Read from the marker's position: %v, want nothing", got)
	}
	_, err = e.s.Delete(context.Background(), "s", log.Expectation{})
	wantErr(t, "Delete of a deleted stream", err, log.ErrNotFound)

	// The stream starts again at the next version: expectations see 3.
	e.conflict("none on a deleted stream", []ev{{stream: "s", typ: "T"}}, map[string]log.Expectation{"s": {Kind: log.ExpectNone}})
	again, err := e.s.Append(context.Background(), e.batch([]ev{{stream: "s", typ: "U"}}, map[string]log.Expectation{"s": {Kind: log.ExpectVersion, Version: 3}}))
	if err != nil {
		t.Fatalf("append expecting the deleted version 3: %v", err)
	}
	if again[0].Version != 4 || again[0].Position != 6 {
		t.Errorf("append after the delete: %+v, want 6 s@4", again[0])
	}
	out := e.readOK(e.s, log.Query{Selection: sel(t, "s")})
	if len(out) != 1 || out[0].Version != 4 || out[0].Type != "U" {
		t.Errorf("Read s after the delete and an append: %v, want s@4 alone", out)
	}
	if info, err := e.s.Head("s"); err != nil || info.Version != 4 || info.Last != 6 || info.Deleted {
		t.Errorf("Head(s) after the append: %+v, %v", info, err)
	}
}

// testTruncate: a truncate cuts a stream's events before a version off
// at once; cursors count from what is left.
func testTruncate(e *env) {
	t := e.t
	for range 5 {
		e.append(e.s, ev{stream: "s", typ: "T"})
	}
	e.append(e.s, ev{stream: "o", typ: "T"}) // 6
	_, err := e.s.Truncate(context.Background(), "missing", 2, log.Expectation{})
	wantErr(t, "Truncate of a missing stream", err, log.ErrNotFound)
	next0, heads0 := e.state()
	_, err = e.s.Truncate(context.Background(), "s", 3, log.Expectation{Kind: log.ExpectVersion, Version: 4})
	wantErr(t, "Truncate of s at 5 expecting 4", err, log.ErrConflict)
	e.unchanged("a truncate that failed its expectation", next0, heads0)

	res, err := e.s.Truncate(context.Background(), "s", 3, log.Expectation{Kind: log.ExpectVersion, Version: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Position != 7 {
		t.Errorf("Truncate: marker at %d, want 7", res.Position)
	}
	info, err := e.s.Head("s")
	if err != nil || info.Version != 5 || info.Cut != 2 || info.Deleted {
		t.Errorf("Head(s) after truncate before 3: %+v, %v; want version 5 cut 2", info, err)
	}
	for _, c := range []struct {
		from        codec.Cursor
		stream, all []uint64 // positions read of s, and of everything
	}{
		{codec.Cursor{}, []uint64{3, 4, 5}, []uint64{3, 4, 5, 6}},
		{codec.Cursor{Kind: codec.CursorPosition, N: 1}, []uint64{3, 4, 5}, []uint64{3, 4, 5, 6}},
		{codec.Cursor{Kind: codec.CursorAfterHead, N: 1}, []uint64{4, 5}, []uint64{4, 5, 6}},
		{codec.Cursor{Kind: codec.CursorBeforeEnd, N: 10}, []uint64{3, 4, 5}, []uint64{3, 4, 5, 6}},
		{codec.Cursor{Kind: codec.CursorBeforeEnd, N: 2}, []uint64{4, 5}, []uint64{5, 6}},
	} {
		for _, x := range []struct {
			selection string
			want      []uint64
		}{{"s", c.stream}, {"*", c.all}} {
			q := log.Query{Selection: sel(t, x.selection), From: c.from}
			if got := positions(e.readOK(e.s, q)); !slices.Equal(got, x.want) {
				t.Errorf("Read %s after truncate before 3 (marker at 7): %v, want %v", describe(q), got, x.want)
			}
		}
	}
	if got := positions(e.readOK(e.s, log.Query{})); !slices.Equal(got, []uint64{3, 4, 5, 6}) {
		t.Errorf("Read everything after the truncate: %v, want [3 4 5 6]", got)
	}
	// Versions go on; truncating below the cut cuts nothing more.
	if r := e.append(e.s, ev{stream: "s", typ: "T"}); r[0].Version != 6 || r[0].Position != 8 {
		t.Errorf("append after the truncate: %+v, want 8 s@6", r[0])
	}
	if _, err := e.s.Truncate(context.Background(), "s", 2, log.Expectation{}); err != nil {
		t.Errorf("Truncate below the cut: %v", err)
	}
	if got := versions(e.readOK(e.s, log.Query{Selection: sel(t, "s")})); !slices.Equal(got, []uint64{3, 4, 5, 6}) {
		t.Errorf("Read s after truncating below the cut: versions %v, want [3 4 5 6]", got)
	}
	// Truncating past the last event leaves a stream with none.
	if _, err := e.s.Truncate(context.Background(), "s", 7, log.Expectation{}); err != nil {
		t.Fatalf("Truncate before 7 (everything): %v", err)
	}
	_, err = e.read(e.s, log.Query{Selection: sel(t, "s")})
	wantErr(t, "Read of a stream truncated to nothing", err, log.ErrNotFound)
	if got := positions(e.readOK(e.s, log.Query{})); !slices.Equal(got, []uint64{6}) {
		t.Errorf("Read everything after truncating s to nothing: %v, want [6]", got)
	}
}

// testRetention: UpdateRetention stores the policy, and its limits take
// effect for reads at once.
func testRetention(e *env) {
	t := e.t
	if r, err := e.s.Retention(); err != nil || len(r.Rules) != 0 || r.MaxBytes != 0 {
		t.Errorf("Retention of a new store: %+v, %v; want none", r, err)
	}
	old := time.Now().Add(-3 * time.Hour)
	e.append(e.s,
		ev{stream: "old-1", typ: "T", at: old},                  // 1
		ev{stream: "age-1", typ: "T", at: old},                  // 2
		ev{stream: "age-1", typ: "T", at: old.Add(time.Second)}, // 3
	)
	e.append(e.s, ev{stream: "age-1", typ: "T"}) // 4, now
	for range 5 {
		e.append(e.s, ev{stream: "count-1", typ: "T"}) // 5..9
	}
	e.append(e.s, ev{stream: "count-2", typ: "T"}) // 10

	// An error from fn changes nothing.
	boom := errors.New("boom")
	err := e.s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = append(r.Rules, log.Rule{Selection: "*", MaxCount: 1})
		return boom
	})
	wantErr(t, "UpdateRetention whose fn fails", err, boom)
	if r, err := e.s.Retention(); err != nil || len(r.Rules) != 0 {
		t.Errorf("Retention after a failed update: %+v, %v; want none", r, err)
	}
	if got := positions(e.readOK(e.s, log.Query{})); len(got) != 10 {
		t.Errorf("Read after a failed update: %v, want all 10", got)
	}

	err = e.s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = append(r.Rules, log.Rule{Selection: "count-*", MaxCount: 2})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.s.Retention()
	if err != nil || len(r.Rules) != 1 || r.Rules[0] != (log.Rule{Selection: "count-*", MaxCount: 2}) {
		t.Errorf("Retention after adding a rule: %+v, %v", r, err)
	}
	if got := versions(e.readOK(e.s, log.Query{Selection: sel(t, "count-1")})); !slices.Equal(got, []uint64{4, 5}) {
		t.Errorf("Read count-1 under max count 2: versions %v, want [4 5]", got)
	}
	if got := versions(e.readOK(e.s, log.Query{Selection: sel(t, "count-1"), From: codec.Cursor{Kind: codec.CursorAfterHead, N: 1}})); !slices.Equal(got, []uint64{5}) {
		t.Errorf("Read count-1 +1 under max count 2: versions %v, want [5]", got)
	}
	if got := positions(e.readOK(e.s, log.Query{})); !slices.Equal(got, []uint64{1, 2, 3, 4, 8, 9, 10}) {
		t.Errorf("Read everything under max count 2 of count-*: %v, want [1 2 3 4 8 9 10]", got)
	}

	err = e.s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = append(r.Rules, log.Rule{Selection: "*", MaxAge: time.Hour})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := e.s.Retention(); err != nil || len(r.Rules) != 2 {
		t.Errorf("Retention after adding a second rule: %+v, %v", r, err)
	}
	if got := positions(e.readOK(e.s, log.Query{})); !slices.Equal(got, []uint64{4, 8, 9, 10}) {
		t.Errorf("Read everything under max age 1h: %v, want [4 8 9 10]", got)
	}
	if got := versions(e.readOK(e.s, log.Query{Selection: sel(t, "age-1")})); !slices.Equal(got, []uint64{3}) {
		t.Errorf("Read age-1 under max age 1h: versions %v, want [3]", got)
	}
	_, err = e.s.Head("old-1")
	wantErr(t, "Head of a stream whose events all expired", err, log.ErrNotFound)
	_, err = e.read(e.s, log.Query{Selection: sel(t, "old-1")})
	wantErr(t, "Read of a stream whose events all expired", err, log.ErrNotFound)
	heads, err := e.s.Streams(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range heads {
		names = append(names, h.Stream)
	}
	if fmt.Sprint(names) != "[age-1 count-1 count-2]" {
		t.Errorf("Streams under max age 1h: %v, want [age-1 count-1 count-2]", names)
	}
	first, _, err := e.s.Bounds()
	if err != nil || first > 4 {
		t.Errorf("Bounds under retention: first %d, %v; want at most 4, the first retained event", first, err)
	}
}

// testSnapshots: a saved snapshot loads back while it matches the log;
// a missing or stale one is simply not there.
func testSnapshots(e *env) {
	t := e.t
	if _, ok := e.s.LoadSnapshot("fp", "s"); ok {
		t.Errorf("LoadSnapshot in an empty store found one")
	}
	e.append(e.s, ev{stream: "s", typ: "T"}, ev{stream: "o", typ: "T"}, ev{stream: "s", typ: "T"}, ev{stream: "s", typ: "T"})
	if _, ok := e.s.LoadSnapshot("fp", "s"); ok {
		t.Errorf("LoadSnapshot before any save found one")
	}
	want := log.Snapshot{Version: 2, Position: 3, State: []byte(`{"n":2}`)}
	if err := e.s.SaveSnapshot("fp", "s", want); err != nil {
		t.Fatal(err)
	}
	check := func(what string, fp, stream string, want log.Snapshot, found bool) {
		t.Helper()
		got, ok := e.s.LoadSnapshot(fp, stream)
		if ok != found {
			t.Errorf("%s: LoadSnapshot(%s, %s) found %v, want %v", what, fp, stream, ok, found)
			return
		}
		if ok && (got.Version != want.Version || got.Position != want.Position || string(got.State) != string(want.State)) {
			t.Errorf("%s: LoadSnapshot(%s, %s) = %d@%d %s, want %d@%d %s", what, fp, stream,
				got.Version, got.Position, got.State, want.Version, want.Position, want.State)
		}
	}
	check("after a save", "fp", "s", want, true)
	check("another fingerprint", "fp2", "s", log.Snapshot{}, false)
	check("another stream", "fp", "o", log.Snapshot{}, false)
	// A second handle sees it: it is in the store, not in the handle.
	other := e.another()
	if got, ok := other.LoadSnapshot("fp", "s"); !ok || got.Version != 2 {
		t.Errorf("another handle: LoadSnapshot = %+v, %v", got, ok)
	}
	newer := log.Snapshot{Version: 3, Position: 4, State: []byte(`{"n":3}`)}
	if err := e.s.SaveSnapshot("fp", "s", newer); err != nil {
		t.Fatal(err)
	}
	check("after a newer save", "fp", "s", newer, true)
	// Folded from events a truncate cut off: stale.
	if _, err := e.s.Truncate(context.Background(), "s", 2, log.Expectation{}); err != nil {
		t.Fatal(err)
	}
	check("after a truncate", "fp", "s", log.Snapshot{}, false)
	if err := e.s.SaveSnapshot("fp", "o", log.Snapshot{Version: 1, Position: 2, State: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	check("o after its save", "fp", "o", log.Snapshot{Version: 1, Position: 2, State: []byte(`1`)}, true)
	if _, err := e.s.Delete(context.Background(), "o", log.Expectation{}); err != nil {
		t.Fatal(err)
	}
	check("after a delete", "fp", "o", log.Snapshot{}, false)
}
