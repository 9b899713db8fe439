package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// visibleEvents reads every event Scan shows.
func visibleEvents(t *testing.T, s *Store) []codec.Event {
	t.Helper()
	var out []codec.Event
	if _, err := s.Scan(1, func(rec *codec.Record) error {
		out = append(out, rec.Event())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// streamEvents reads one stream through ReadStream (nil if not found).
func streamEvents(t *testing.T, s *Store, stream string) []codec.Event {
	t.Helper()
	var out []codec.Event
	_, err := s.ReadStream(stream, 1, func(rec *codec.Record) error {
		out = append(out, rec.Event())
		return nil
	})
	if err != nil && !errors.Is(err, log.ErrNotFound) {
		t.Fatal(err)
	}
	return out
}

func positions(evs []codec.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

// checkStreamsAgree checks that every stream read alone gives the events
// of that stream the whole log shows, in order.
func checkStreamsAgree(t *testing.T, s *Store, all []codec.Event, streams []string) {
	t.Helper()
	for _, name := range streams {
		var want []uint64
		for _, e := range all {
			if e.Stream == name {
				want = append(want, e.Position)
			}
		}
		if got := positions(streamEvents(t, s, name)); !slices.Equal(got, want) {
			t.Fatalf("stream %s reads %v, the log shows %v", name, got, want)
		}
	}
}

func TestDeleteAndTruncate(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	appendN(t, s, "acct-1", 5)
	appendN(t, s, "acct-2", 3)

	if _, err := s.Truncate(context.Background(), "acct-1", 3, log.Expectation{}); err != nil {
		t.Fatal(err)
	}
	if got := streamEvents(t, s, "acct-1"); len(got) != 3 || got[0].Version != 3 {
		t.Fatalf("after truncate before 3: %d events, first v%d", len(got), got[0].Version)
	}
	if _, err := s.Truncate(context.Background(), "acct-1", 9, log.Expectation{}); err == nil {
		t.Fatal("truncate past the head + 1 succeeded")
	}
	res, err := s.Delete(context.Background(), "acct-2", log.Expectation{})
	if err != nil || res.Version != 3 {
		t.Fatalf("delete: %+v %v", res, err)
	}
	if _, err := s.Head("acct-2"); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("Head of a deleted stream: %v", err)
	}
	if _, err := s.Delete(context.Background(), "acct-2", log.Expectation{}); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	// Its versions are not given again.
	var b log.Batch
	b.Add("acct-2", "Opened", "", []byte(`{}`), nil)
	b.Expect("acct-2", log.Expectation{Kind: log.ExpectNone})
	if _, err := s.Append(context.Background(), &b); !errors.Is(err, log.ErrConflict) {
		t.Fatalf("append --expect none to a deleted stream: %v", err)
	}
	r := appendN(t, s, "acct-2", 1)
	if r[0].Version != 4 {
		t.Fatalf("append after delete: version %d, want 4", r[0].Version)
	}
	if got := streamEvents(t, s, "acct-2"); len(got) != 1 || got[0].Version != 4 {
		t.Fatalf("deleted stream appended again reads %v", positions(got))
	}
	all := visibleEvents(t, s)
	if len(all) != 4 {
		t.Fatalf("log shows %d events, want 3 of acct-1 and 1 of acct-2", len(all))
	}
	if _, err := s.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// The tables rebuilt from the log say the same.
	s.Close()
	os.Remove(filepath.Join(s.dir, headsFile))
	os.Remove(filepath.Join(s.dir, idsFile))
	s2 := openTest(t, s.dir, 0)
	if got := positions(visibleEvents(t, s2)); !slices.Equal(got, positions(all)) {
		t.Fatalf("after rebuild: %v, want %v", got, positions(all))
	}
	if info, err := s2.Head("acct-2"); err != nil || info.Version != 4 || info.Cut != 3 {
		t.Fatalf("Head after rebuild: %+v %v", info, err)
	}
}

// TestCompactionIsInvisible runs random appends, cuts, rules and
// compactions, and checks after each compaction that every read shows
// exactly what it showed before, that the store verifies, and that the
// tables rebuilt from the compacted log agree.
func TestCompactionIsInvisible(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			dir := t.TempDir()
			s := openTest(t, dir, 2048)
			streams := []string{"a-1", "a-2", "b-1", "b-2", "q-1"}
			old := time.Now().Add(-2 * time.Hour).UnixNano()
			err := s.UpdateRetention(func(r *log.Retention) error {
				r.Rules = []log.Rule{{Selection: "b-*", MaxCount: 4}, {Selection: "a-2", MaxAge: time.Hour}}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 30; round++ {
				var b log.Batch
				for i := rng.IntN(6) + 1; i > 0; i-- {
					name := streams[rng.IntN(len(streams))]
					data := []byte(fmt.Sprintf(`{"round":%d,"pad":"%0100d"}`, round, i))
					if round < 10 {
						b.AddAt(name, "T", "", data, nil, old) // two hours ago
					} else {
						b.Add(name, "T", "", data, nil)
					}
				}
				if _, err := s.Append(context.Background(), &b); err != nil {
					t.Fatal(err)
				}
				switch rng.IntN(6) {
				case 0:
					name := streams[rng.IntN(len(streams))]
					if info, err := s.Head(name); err == nil && info.Version > 1 {
						if _, err := s.Truncate(context.Background(), name, info.Version+1-uint64(rng.IntN(3)), log.Expectation{}); err != nil {
							t.Fatal(err)
						}
					}
				case 1:
					if _, err := s.Delete(context.Background(), streams[rng.IntN(len(streams))], log.Expectation{}); err != nil && !errors.Is(err, log.ErrNotFound) {
						t.Fatal(err)
					}
				}
				if round%7 == 6 || round == 29 {
					before := visibleEvents(t, s)
					rep, err := s.Compact(context.Background(), nil)
					if err != nil {
						t.Fatal(err)
					}
					after := visibleEvents(t, s)
					if !slices.Equal(positions(after), positions(before)) {
						t.Fatalf("round %d: compaction changed the log from %v to %v (%+v)", round, positions(before), positions(after), rep)
					}
					checkStreamsAgree(t, s, after, streams)
					if _, err := s.Verify(context.Background(), nil); err != nil {
						t.Fatalf("round %d: verify after compaction (%+v): %v", round, rep, err)
					}
					// A fresh reader, and tables rebuilt from the segments.
					r, err := Open(dir, Options{})
					if err != nil {
						t.Fatal(err)
					}
					if got := visibleEvents(t, r); !slices.Equal(positions(got), positions(before)) {
						t.Fatalf("round %d: a fresh reader sees %v, want %v", round, positions(got), positions(before))
					}
					r.Close()
					heads := map[string]uint64{}
					for _, name := range streams {
						var vals [headsValues]uint64
						if s.heads.get(keyOf(name), vals[:]) {
							heads[name] = vals[1]
						}
					}
					if _, err := s.Repair(context.Background(), false, nil); err != nil {
						t.Fatalf("round %d: repair after compaction: %v", round, err)
					}
					if err := os.Remove(filepath.Join(dir, headsFile)); err != nil {
						t.Fatal(err)
					}
					if got := visibleEvents(t, s); !slices.Equal(positions(got), positions(before)) {
						t.Fatalf("round %d: after rebuilding the tables %v, want %v", round, positions(got), positions(before))
					}
					for name, v := range heads {
						var vals [headsValues]uint64
						if !s.heads.get(keyOf(name), vals[:]) || vals[1] != v {
							t.Fatalf("round %d: stream %s at version %d after a rebuild, was %d", round, name, vals[1], v)
						}
					}
				}
			}
		})
	}
}

func TestCompactionShrinksAndRemovesSegments(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 4096)
	for i := 0; i < 40; i++ {
		appendN(t, s, fmt.Sprintf("q-%d", i%4), 5)
	}
	size := func() int64 {
		var n int64
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if filepath.Ext(e.Name()) == ".seg" {
				fi, _ := e.Info()
				n += fi.Size()
			}
		}
		return n
	}
	before := size()
	// Keep the newest 5 events of each of the 4 streams.
	if err := s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = []log.Rule{{Selection: "q-*", MaxCount: 5}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Compact(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	after := size()
	// The 4 sealed segments held 160 events, all removed; the active
	// segment holds the newest 40, half of them removed: compaction
	// seals it and rewrites it with the 20 that stay.
	if rep.Removed != 4 || rep.Dropped != 180 || rep.Rewritten != 1 || after*4 > before {
		t.Fatalf("compaction: %+v; %d bytes before, %d after", rep, before, after)
	}
	if got := visibleEvents(t, s); len(got) != 20 {
		t.Fatalf("%d events after compaction, want 20", len(got))
	}
	first, _, err := s.Bounds()
	if err != nil || first == 1 {
		t.Fatalf("Bounds after removing the oldest segments: first %d, %v", first, err)
	}
	if _, err := s.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// Nothing left to do: a second compaction changes nothing.
	rep, err = s.Compact(context.Background(), nil)
	if err != nil || rep.Dropped != 0 {
		t.Fatalf("second compaction: %+v %v", rep, err)
	}
}

func TestCopyRuns(t *testing.T) {
	dir := t.TempDir()
	src := make([]byte, 5<<20)
	for i := range src {
		src[i] = byte(i * 7 / 3)
	}
	in := filepath.Join(dir, "in")
	os.WriteFile(in, src, 0o600)
	f, _ := vfs.OS.OpenFile(in, os.O_RDONLY, 0)
	defer f.Close()
	out, _ := vfs.OS.OpenFile(filepath.Join(dir, "out"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	defer out.Close()
	out.Write([]byte("head"))
	// Small ranges within one window, across a window edge, and ranges
	// long enough for the kernel copy.
	runs := []byteRange{{10, 20}, {30, 1 << 19}, {1<<20 - 5, 1<<20 + 5}, {(1 << 20) + 100, (3 << 20) + 7}, {4 << 20, 5 << 20}}
	if err := copyRuns(out, f, runs); err != nil {
		t.Fatal(err)
	}
	want := []byte("head")
	for _, r := range runs {
		want = append(want, src[r.off:r.end]...)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out"))
	if !bytes.Equal(got, want) {
		t.Fatalf("copied %d bytes, want %d (equal: %v)", len(got), len(want), bytes.Equal(got, want))
	}
	if err := copyRuns(out, f, []byteRange{{5 << 20, 5<<20 + 10}}); err == nil {
		t.Fatal("a range past the end copied")
	}
}

// TestVerifyDuringCompaction: verify waits for a compaction's swaps
// rather than reading a segment whose offsets file was just replaced (it
// reported such a segment as damaged).
func TestVerifyDuringCompaction(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 2048)
	if err := s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = []log.Rule{{Selection: "tmp-*", MaxCount: 1}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		r, err := Open(dir, Options{})
		if err != nil {
			errs <- err
			return
		}
		defer r.Close()
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			if _, err := r.Verify(context.Background(), nil); err != nil {
				errs <- err
				return
			}
		}
	}()
	for round := 0; round < 30; round++ {
		for i := 0; i < 5; i++ {
			appendN(t, s, fmt.Sprintf("tmp-%d", i), 4)
			appendN(t, s, "keep-1", 1)
		}
		if _, err := s.Compact(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Fatalf("verify during compaction: %v", err)
	}
}
