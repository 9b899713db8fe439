package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// t0 is the time of the first event of the fixture.
var t0 = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// fixture is the log the read tests run on: four streams in two
// categories, three types, times one second apart but for two events
// that share one (positions 6 and 7).
var fixture = []struct {
	stream, typ string
	at          time.Duration // after t0
}{
	{"a-1", "X", 0},               // 1
	{"a-2", "Y", 1 * time.Second}, // 2
	{"b-1", "X", 2 * time.Second}, // 3
	{"a-1", "Y", 3 * time.Second}, // 4
	{"a-1", "X", 4 * time.Second}, // 5
	{"b-1", "Y", 5 * time.Second}, // 6
	{"a-2", "X", 5 * time.Second}, // 7
	{"a-1", "X", 7 * time.Second}, // 8
	{"b-2", "Z", 8 * time.Second}, // 9
	{"a-2", "Y", 9 * time.Second}, // 10
}

// loadFixture appends the fixture in three batches.
func (e *env) loadFixture() {
	e.t.Helper()
	var evs []ev
	for i, f := range fixture {
		evs = append(evs, ev{stream: f.stream, typ: f.typ, data: fmt.Sprintf(`{"n":%d}`, i+1), at: t0.Add(f.at)})
	}
	e.append(e.s, evs[:3]...)
	e.append(e.s, evs[3:4]...)
	e.append(e.s, evs[4:]...)
}

// positions lists the positions of evs.
func positions(evs []got) []uint64 {
	out := make([]uint64, 0, len(evs))
	for _, g := range evs {
		out = append(out, g.Position)
	}
	return out
}

// model computes what a read of the fixture yields, from the contract's
// words: the selected events, then the cursor, then To.
func model(selection string, types []string, from codec.Cursor, to uint64) []uint64 {
	s, _ := codec.ParseSelection(selection)
	return modelOf(s, types, from, to)
}

// modelOf is model for a parsed selection (a union, say).
func modelOf(s codec.Selection, types []string, from codec.Cursor, to uint64) []uint64 {
	var picked []uint64
	for i, f := range fixture {
		if s.Match(f.stream) && (len(types) == 0 || slices.Contains(types, f.typ)) {
			picked = append(picked, uint64(i+1))
		}
	}
	switch from.Kind {
	case codec.CursorEnd:
		picked = nil
	case codec.CursorPosition:
		picked = slices.DeleteFunc(picked, func(p uint64) bool { return p < from.N })
	case codec.CursorAfterHead:
		picked = picked[min(from.N, uint64(len(picked))):]
	case codec.CursorBeforeEnd:
		picked = picked[uint64(len(picked))-min(from.N, uint64(len(picked))):]
	case codec.CursorTime:
		at := fixturePositionAt(from.Time)
		picked = slices.DeleteFunc(picked, func(p uint64) bool { return p < at })
	}
	if to > 0 {
		picked = slices.DeleteFunc(picked, func(p uint64) bool { return p > to })
	}
	return picked
}

// fixturePositionAt is PositionAt over the fixture.
func fixturePositionAt(t time.Time) uint64 {
	for i, f := range fixture {
		if !t0.Add(f.at).Before(t) {
			return uint64(i + 1)
		}
	}
	return uint64(len(fixture) + 1)
}

// testHeads: Head and Streams report each stream's last event; a missing
// stream is ErrNotFound; Streams filters and sorts.
func testHeads(e *env) {
	t := e.t
	if _, err := e.s.Head("a-1"); !errors.Is(err, log.ErrNotFound) {
		t.Errorf("Head of a stream of an empty store: %v, want ErrNotFound", err)
	}
	if all, err := e.s.Streams(nil); err != nil || len(all) != 0 {
		t.Errorf("Streams of an empty store: %v, %v", all, err)
	}
	e.loadFixture()
	info, err := e.s.Head("a-1")
	if err != nil {
		t.Fatal(err)
	}
	want := log.StreamInfo{Stream: "a-1", Version: 4, Last: 8, LastType: "X", LastTime: t0.Add(7 * time.Second)}
	if info.Stream != want.Stream || info.Version != want.Version || info.Last != want.Last || info.LastType != want.LastType ||
		!info.LastTime.Equal(want.LastTime) || info.Cut != 0 || info.Deleted {
		t.Errorf("Head(a-1) = %+v, want %+v", info, want)
	}
	_, err = e.s.Head("a-3")
	wantErr(t, "Head of a missing stream", err, log.ErrNotFound)
	all, err := e.s.Streams(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range all {
		names = append(names, fmt.Sprintf("%s@%d:%d", i.Stream, i.Version, i.Last))
	}
	if got, want := strings.Join(names, " "), "a-1@4:8 a-2@3:10 b-1@2:6 b-2@1:9"; got != want {
		t.Errorf("Streams(nil) = %s, want %s", got, want)
	}
	bs, err := e.s.Streams(func(s string) bool { return strings.HasPrefix(s, "b-") })
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Stream != "b-1" || bs[1].Stream != "b-2" || bs[1].LastType != "Z" {
		t.Errorf("Streams(b-*) = %+v", bs)
	}
	// A store's order of creation is not the order of names.
	e.append(e.s, ev{stream: "0-first", typ: "T"})
	all, err = e.s.Streams(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[0].Stream != "0-first" {
		t.Errorf("Streams after adding 0-first: %+v", all)
	}
}

// testBounds: Bounds and PositionAt over a log with known times.
func testBounds(e *env) {
	t := e.t
	first, next, err := e.s.Bounds()
	if err != nil || first != 1 || next != 1 {
		t.Errorf("Bounds of an empty store: %d, %d, %v; want 1, 1", first, next, err)
	}
	if p, err := e.s.PositionAt(t0); err != nil || p != 1 {
		t.Errorf("PositionAt in an empty store: %d, %v; want 1", p, err)
	}
	e.loadFixture()
	first, next, err = e.s.Bounds()
	if err != nil || first != 1 || next != 11 {
		t.Errorf("Bounds = %d, %d, %v; want 1, 11", first, next, err)
	}
	for _, c := range []struct {
		at   time.Duration
		want uint64
	}{
		{-time.Hour, 1}, {0, 1}, {time.Nanosecond, 2}, {3500 * time.Millisecond, 5},
		{5 * time.Second, 6}, {6 * time.Second, 8}, {9 * time.Second, 10}, {9*time.Second + 1, 11}, {time.Hour, 11},
	} {
		p, err := e.s.PositionAt(t0.Add(c.at))
		if err != nil || p != c.want {
			t.Errorf("PositionAt(t0%+v) = %d, %v; want %d", c.at, p, err, c.want)
		}
	}
}

// testRead: every cursor kind, on one stream, a glob and everything,
// with and without types and To, against the model of the fixture.
func testRead(e *env) {
	t := e.t
	e.loadFixture()
	// A few by hand, so the model is checked too.
	for _, c := range []struct {
		selection string
		types     []string
		from      codec.Cursor
		to        uint64
		want      []uint64
	}{
		{"a-1", nil, codec.Cursor{}, 0, []uint64{1, 4, 5, 8}},
		{"a-*", []string{"X"}, codec.Cursor{Kind: codec.CursorAfterHead, N: 1}, 0, []uint64{5, 7, 8}},
		{"", nil, codec.Cursor{Kind: codec.CursorBeforeEnd, N: 3}, 0, []uint64{8, 9, 10}},
		{"a-1", nil, codec.Cursor{Kind: codec.CursorBeforeEnd, N: 2}, 0, []uint64{5, 8}},
		{"", nil, codec.Cursor{Kind: codec.CursorTime, Time: t0.Add(3500 * time.Millisecond)}, 7, []uint64{5, 6, 7}},
		{"*-2", nil, codec.Cursor{Kind: codec.CursorPosition, N: 3}, 9, []uint64{7, 9}},
	} {
		if m := model(c.selection, c.types, c.from, c.to); !slices.Equal(m, c.want) {
			t.Fatalf("the suite's model is wrong: %v, want %v", m, c.want)
		}
		q := log.Query{Selection: sel(t, c.selection), Types: c.types, From: c.from, To: c.to}
		if got := positions(e.readOK(e.s, q)); !slices.Equal(got, c.want) {
			t.Errorf("Read %s: %v, want %v", describe(q), got, c.want)
		}
	}
	cursors := []codec.Cursor{
		{Kind: codec.CursorStart},
		{Kind: codec.CursorEnd},
		{Kind: codec.CursorPosition, N: 1}, {Kind: codec.CursorPosition, N: 4}, {Kind: codec.CursorPosition, N: 10},
		{Kind: codec.CursorPosition, N: 11}, {Kind: codec.CursorPosition, N: 100},
		{Kind: codec.CursorAfterHead, N: 0}, {Kind: codec.CursorAfterHead, N: 2}, {Kind: codec.CursorAfterHead, N: 100},
		{Kind: codec.CursorBeforeEnd, N: 0}, {Kind: codec.CursorBeforeEnd, N: 1}, {Kind: codec.CursorBeforeEnd, N: 3},
		{Kind: codec.CursorBeforeEnd, N: 100},
		{Kind: codec.CursorTime, Time: t0.Add(-time.Hour)}, {Kind: codec.CursorTime, Time: t0.Add(5 * time.Second)},
		{Kind: codec.CursorTime, Time: t0.Add(5500 * time.Millisecond)}, {Kind: codec.CursorTime, Time: t0.Add(time.Hour)},
	}
	for _, selection := range []string{"a-1", "b-2", "a-*", "*-1", "", "z-*"} {
		for _, types := range [][]string{nil, {"X"}, {"Y", "Z"}, {"W"}} {
			for _, from := range cursors {
				for _, to := range []uint64{0, 7} {
					if to > 0 && from.Kind == codec.CursorBeforeEnd {
						continue // -N with a bound: the contract does not say which end N counts from
					}
					q := log.Query{Selection: sel(t, selection), Types: types, From: from, To: to}
					want := model(selection, types, from, to)
					if got := positions(e.readOK(e.s, q)); !slices.Equal(got, want) {
						t.Errorf("Read %s: %v, want %v", describe(q), got, want)
					}
				}
			}
		}
	}
}

// testReadMissing: a read of one stream that does not exist yields
// ErrNotFound first, whatever the cursor; a glob that matches nothing
// is simply empty.
func testReadMissing(e *env) {
	t := e.t
	e.loadFixture()
	for _, from := range []codec.Cursor{
		{Kind: codec.CursorStart}, {Kind: codec.CursorEnd}, {Kind: codec.CursorPosition, N: 3},
		{Kind: codec.CursorAfterHead, N: 1}, {Kind: codec.CursorBeforeEnd, N: 1}, {Kind: codec.CursorTime, Time: t0},
	} {
		q := log.Query{Selection: sel(t, "a-3"), From: from}
		out, err := e.read(e.s, q)
		if len(out) != 0 {
			t.Errorf("Read %s yielded events: %v", describe(q), out)
		}
		wantErr(t, "Read "+describe(q), err, log.ErrNotFound)
	}
	q := log.Query{Selection: sel(t, "a-3*")}
	if out, err := e.read(e.s, q); err != nil || len(out) != 0 {
		t.Errorf("Read %s: %v, %v; want nothing and no error", describe(q), out, err)
	}
}

// testReadBreak: a loop that stops ends the read (the iterator yields
// nothing more: range-over-func panics if it does).
func testReadBreak(e *env) {
	t := e.t
	e.loadFixture()
	n := 0
	for rec, err := range e.s.Read(t.Context(), log.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Position != 1 {
			t.Errorf("first event at %d", rec.Position)
		}
		n++
		break
	}
	if n != 1 {
		t.Errorf("loop ran %d times", n)
	}
	// The store is still usable after the loop stopped.
	res := e.append(e.s, ev{stream: "a-1", typ: "X"})
	if res[0].Position != 11 {
		t.Errorf("append after a stopped read at %d, want 11", res[0].Position)
	}
}
