package local

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/evtdev/evt/log"
)

// A batch puts its ids into the id table as it writes them and keeps no
// map of them (appender.go, putID): a later event of the same batch with
// an id of an earlier one is found in the table and read back from the
// batch, from memory or from the segment, and a retry in a new process is
// found in the table or the runs.

// idsPart is part i of n events with given ids id-0 … id-(n-1) over
// streams s-0 … s-(streams-1); a part holds events [from, to).
func idsPart(from, to, streams int, pad string) *log.Batch {
	var b log.Batch
	for i := from; i < to; i++ {
		b.Add(fmt.Sprintf("s-%d", i%streams), "T", fmt.Sprintf("id-%d", i), []byte(`{"pad":"`+pad+`"}`), nil)
	}
	return &b
}

func TestBatchRetriesWithinBatch(t *testing.T) {
	pad := strings.Repeat("x", 300) // 20,000 events: about 8 MB, two flushes
	const n, streams = 20000, 50
	for _, tc := range []struct {
		name string
		// parts are [from, to) ranges of events added in order; what
		// repeats an earlier range is a retry inside the batch.
		parts     [][2]int
		noResults bool
		heldMax   int // idsHeldMax for the case (0: as it is)
	}{
		// The repeat comes after 8 MB were written: read back from the
		// segment file.
		{name: "repeat-written", parts: [][2]int{{0, n}, {0, n}}},
		// The repeat follows at once: still in the appender's buffer.
		{name: "repeat-buffered", parts: [][2]int{{0, 10}, {0, 10}, {10, n}, {n - 5, n}}},
		{name: "repeat-no-results", parts: [][2]int{{0, n}, {100, 200}, {0, n}}, noResults: true},
		{name: "held-small", parts: [][2]int{{0, n}, {0, n}}, heldMax: 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.heldMax != 0 {
				defer func(old int) { idsHeldMax = old }(idsHeldMax)
				idsHeldMax = tc.heldMax
			}
			dir := filepath.Join(t.TempDir(), "store")
			s, err := Open(dir, Options{Create: true, Sync: SyncNone})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Fresh ids too (held for Commit, or put once heldMax are
			// held): the same table, other keys.
			var fresh log.Batch
			for i := 0; i < 3000; i++ {
				fresh.Add(fmt.Sprintf("s-%d", i%streams), "F", "", []byte(`{}`), nil)
			}
			a, err := s.BeginAppend(context.Background(), nil, log.Expectation{}, log.AppendOptions{NoResults: tc.noResults})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Add(&fresh); err != nil {
				t.Fatal(err)
			}
			added := 3000
			for _, p := range tc.parts {
				if err := a.Add(idsPart(p[0], p[1], streams, pad)); err != nil {
					t.Fatal(err)
				}
				added += p[1] - p[0]
			}
			rs, err := a.Commit()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := a.Duplicates(), added-3000-n; got != want {
				t.Fatalf("%d duplicates, want %d", got, want)
			}
			if !tc.noResults {
				// A retry's result is the original's.
				first := map[string]log.Result{}
				for _, r := range rs[3000:] {
					if o, ok := first[r.ID]; ok {
						if !r.Duplicate || r.Position != o.Position || r.Version != o.Version || !r.Time.Equal(o.Time) || r.Stream != o.Stream {
							t.Fatalf("retry of %s: %+v, the original %+v", r.ID, r, o)
						}
						continue
					}
					if r.Duplicate {
						t.Fatalf("first %s reported a duplicate", r.ID)
					}
					first[r.ID] = r
				}
				if len(first) != n {
					t.Fatalf("%d distinct ids, want %d", len(first), n)
				}
			}
			if got := countEvents(t, s); got != 3000+n {
				t.Fatalf("store holds %d events, want %d", got, 3000+n)
			}
			if _, err := s.Verify(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			s.Close()

			// A retry of the whole batch, and of the fresh ids, in a new
			// Store after the segment sealed: all found.
			s2, err := Open(dir, Options{Create: true, SegmentSize: 1 << 20, Sync: SyncNone})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if _, err := s2.Append(context.Background(), idsPart(n, n+1, streams, pad)); err != nil { // seals
				t.Fatal(err)
			}
			retry := idsPart(0, n, streams, pad)
			if !tc.noResults {
				for _, r := range rs[:3000] {
					retry.Add(r.Stream, "F", r.ID, []byte(`{}`), nil)
				}
			}
			res, err := s2.Append(context.Background(), retry)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if !r.Duplicate {
					t.Fatalf("retry %d (%s in %s) appended anew at %d", i, r.ID, r.Stream, r.Position)
				}
			}
		})
	}
}

// countEvents counts the events of the store by a scan.
func countEvents(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	for _, err := range s.Read(context.Background(), log.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestBatchHeapBounded: the heap of one big batch (evt import, evt
// append from a file) does not grow with the batch. Before, the appender
// held a map entry and an id put per given id (≈60 B: 300,000 events held
// ≈20 MB) and an id put per fresh id (24 B) until Commit.
func TestBatchHeapBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 90 MB")
	}
	for _, tc := range []struct {
		name  string
		given bool
	}{{"given-ids", true}, {"fresh-ids", false}} {
		t.Run(tc.name, func(t *testing.T) {
			// A hold of fresh ids small next to the batch: past it, the
			// heap must stay flat too.
			defer func(old int) { idsHeldMax = old }(idsHeldMax)
			idsHeldMax = 20000
			dir := filepath.Join(t.TempDir(), "store")
			s, err := Open(dir, Options{Create: true, Sync: SyncNone})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			a, err := s.BeginAppend(context.Background(), nil, log.Expectation{}, log.AppendOptions{NoResults: true})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Abort()
			pad := strings.Repeat("x", 150)
			live := func() uint64 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return ms.HeapAlloc
			}
			const n, part = 300000, 4096
			var before, peak uint64
			for i := 0; i < n; i += part {
				b := idsPart(i, min(i+part, n), 100, pad)
				if !tc.given {
					b = &log.Batch{}
					for j := i; j < min(i+part, n); j++ {
						b.Add(fmt.Sprintf("s-%d", j%100), "T", "", []byte(`{"pad":"`+pad+`"}`), nil)
					}
				}
				if err := a.Add(b); err != nil {
					t.Fatal(err)
				}
				if i == 8*part {
					before = live() // the buffers are at their size, the hold full
				} else if i > 8*part && i/part%8 == 0 {
					peak = max(peak, live())
				}
			}
			peak = max(peak, live())
			if _, err := a.Commit(); err != nil {
				t.Fatal(err)
			}
			grew := int64(peak) - int64(before)
			t.Logf("live heap %d MB after 32k events, at most %d MB up to 300k (grew %d kB)", before>>20, peak>>20, grew>>10)
			if grew > 4<<20 {
				t.Fatalf("the batch's heap grew by %d MB from 32k to 300k events: it holds something per event", grew>>20)
			}
			if _, err := s.Verify(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRetriesAmidNewEvents: a batch that retries events of the active
// segment while it writes new ones past the committed end (its offsets
// entries and records land where the windows of dupread.go read): every
// retry is found, every new event written once.
func TestRetriesAmidNewEvents(t *testing.T) {
	pad := strings.Repeat("y", 200)
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(dir, Options{Create: true, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 30000
	if _, err := s.Append(context.Background(), idsPart(0, n, 20, pad)); err != nil {
		t.Fatal(err)
	}
	a, err := s.BeginAppend(context.Background(), nil, log.Expectation{}, log.AppendOptions{NoResults: true})
	if err != nil {
		t.Fatal(err)
	}
	// Old and new by turns, 1,000 at a time: new ones n … 2n-1.
	for i := 0; i < n; i += 1000 {
		if err := a.Add(idsPart(i, i+1000, 20, pad)); err != nil {
			t.Fatal(err)
		}
		if err := a.Add(idsPart(n+i, n+i+1000, 20, pad)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Add(idsPart(n, 2*n, 20, pad)); err != nil { // retries of the new ones
		t.Fatal(err)
	}
	if _, err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := a.Duplicates(); got != 2*n {
		t.Fatalf("%d duplicates, want %d", got, 2*n)
	}
	if got := countEvents(t, s); got != 2*n {
		t.Fatalf("store holds %d events, want %d", got, 2*n)
	}
	if _, err := s.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}
