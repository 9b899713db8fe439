package local

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// TestLastNBack: the last N events of a glob or a type are the same
// whether they lie in the last window scanned back from the end or
// thousands of positions before it (the windows double), with a bound
// and a loop that stops early.
func TestLastNBack(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	// 20,000 events of noise-* with a rare-* event every 3,000 and a
	// type Rare every 7,000.
	var b log.Batch
	var rare, rareType []uint64
	for p := uint64(1); p <= 20000; p++ {
		stream, typ := fmt.Sprintf("noise-%d", p%50), "Noise"
		if p%3000 == 0 {
			stream = fmt.Sprintf("rare-%d", p%2)
			rare = append(rare, p)
		}
		if p%7000 == 0 {
			typ = "Rare"
			rareType = append(rareType, p)
		}
		if err := b.Add(stream, typ, "", []byte("{}"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	read := func(q log.Query, stopAfter int) []uint64 {
		t.Helper()
		var out []uint64
		for rec, err := range s.Read(context.Background(), q) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec.Position)
			if len(out) == stopAfter {
				break
			}
		}
		return out
	}
	glob, _ := codec.ParseSelection("rare-*")
	last := func(n uint64) codec.Cursor { return codec.Cursor{Kind: codec.CursorBeforeEnd, N: n} }
	tests := []struct {
		name string
		q    log.Query
		stop int
		want []uint64
	}{
		{"last 2 of a rare glob", log.Query{Selection: glob, From: last(2)}, 0, rare[len(rare)-2:]},
		{"all of a rare glob", log.Query{Selection: glob, From: last(100)}, 0, rare},
		{"last 1 of a type", log.Query{Types: []string{"Rare"}, From: last(1)}, 0, rareType[len(rareType)-1:]},
		{"more than there are of a type", log.Query{Types: []string{"Rare"}, From: last(5)}, 0, rareType},
		{"bounded: the last 5, then those up to 10000", log.Query{Selection: glob, From: last(5), To: 10000}, 0, []uint64{6000, 9000}},
		{"stopped early", log.Query{Selection: glob, From: last(4), To: 0}, 1, rare[len(rare)-4 : len(rare)-3]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := read(tt.q, tt.stop); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
