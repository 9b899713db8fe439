package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// union parses selections and makes their union (several SELECTION
// arguments).
func (e *env) union(patterns ...string) codec.Selection {
	e.t.Helper()
	var sels []codec.Selection
	for _, p := range patterns {
		sels = append(sels, sel(e.t, p))
	}
	return codec.Union(sels...)
}

// testReadUnion: a union of selections yields every event any of them
// selects, in position order, each once, with every cursor, type filter
// and bound; streams that do not exist add nothing and are no error;
// cuts hide a stream's events in a union as alone; following a union
// sees new events of each of its parts.
func testReadUnion(e *env) {
	e.loadFixture()
	unions := [][]string{
		{"a-1", "b-1"},
		{"b-2", "a-2", "a-1"},
		{"a-1", "a-1"},
		{"a-1", "b-*"},
		{"a-9", "b-2"},
		{"a-9", "b-9"},
		{"b-1", "*"},
	}
	cursors := []codec.Cursor{
		{Kind: codec.CursorStart},
		{Kind: codec.CursorEnd},
		{Kind: codec.CursorPosition, N: 4},
		{Kind: codec.CursorPosition, N: 11},
		{Kind: codec.CursorAfterHead, N: 2},
		{Kind: codec.CursorBeforeEnd, N: 3},
		{Kind: codec.CursorBeforeEnd, N: 100},
		{Kind: codec.CursorTime, Time: t0.Add(5 * time.Second)},
	}
	for _, parts := range unions {
		u := e.union(parts...)
		for _, types := range [][]string{nil, {"X"}, {"Z", "Y"}} {
			for _, from := range cursors {
				for _, to := range []uint64{0, 6} {
					q := log.Query{Selection: u, Types: types, From: from, To: to}
					got := positions(e.readOK(e.s, q))
					want := modelOf(u, types, from, to)
					if !slices.Equal(got, want) {
						e.t.Errorf("Read %s (union of %s): %v, want %v", describe(q), strings.Join(parts, ", "), got, want)
					}
				}
			}
		}
	}
	// A cut hides a stream's events in a union as it does alone.
	if _, err := e.s.Truncate(context.Background(), "a-1", 3, log.Expectation{}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.Delete(context.Background(), "b-1", log.Expectation{}); err != nil {
		e.t.Fatal(err)
	}
	q := log.Query{Selection: e.union("a-1", "b-1", "b-2")}
	if got, want := positions(e.readOK(e.s, q)), []uint64{5, 8, 9}; !slices.Equal(got, want) {
		e.t.Errorf("Read %s after a truncate of a-1 and a delete of b-1: %v, want %v", describe(q), got, want)
	}
	// Following a union sees each part's new events, and only theirs.
	_, next, err := e.s.Bounds()
	if err != nil {
		e.t.Fatal(err)
	}
	other := e.another()
	e.append(other, ev{stream: "c-1", typ: "T"})
	q = log.Query{Selection: e.union("a-1", "c-1"), From: codec.Cursor{Kind: codec.CursorPosition, N: next}, Follow: true}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	f := e.follow(ctx, e.s, q, 2, func(evs []got) {
		if len(evs) == 1 { // the read is following now: append to three streams
			e.append(other, ev{stream: "b-1", typ: "T"}, ev{stream: "a-2", typ: "T"})
			e.append(other, ev{stream: "a-1", typ: "T"})
		}
	})
	if f.err != nil {
		e.t.Fatalf("Read %s: %v", describe(q), f.err)
	}
	var seen []string
	for _, g := range f.events {
		seen = append(seen, fmt.Sprintf("%d %s", g.Position, g.Stream))
	}
	if got, want := strings.Join(seen, ", "), fmt.Sprintf("%d c-1, %d a-1", next, next+3); got != want {
		e.t.Errorf("follow of a union of a-1 and c-1: %s, want %s", got, want)
	}
}
