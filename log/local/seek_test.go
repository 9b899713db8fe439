package local

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// seekEvent is what a seek or stream read is checked against: one event
// as a full scan of the store saw it.
type seekEvent struct {
	pos     uint64
	stream  string
	version uint64
	time    int64
	data    string
}

// seekSegSize makes a segment hold a few dozen of the fixture's events,
// so that the fixture spans dozens of sealed segments.
const seekSegSize = 4096

// buildSeekStore appends batches of 1–4 events to the store in dir: most
// batches have an event of "long-1", the others go to "other-0" …
// "other-9", so long-1 is interleaved with other streams and spans every
// segment. It returns the store as a full scan reads it.
func buildSeekStore(t *testing.T, dir string, segSize int64, batches int, rng *rand.Rand) []seekEvent {
	t.Helper()
	s, err := Open(dir, Options{Create: true, SegmentSize: segSize, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range batches {
		var b log.Batch
		for j := range 1 + rng.IntN(4) {
			stream := fmt.Sprintf("other-%d", rng.IntN(10))
			if rng.IntN(3) > 0 {
				stream = "long-1"
			}
			if err := b.Add(stream, "Happened", "", fmt.Appendf(nil, `{"batch":%d,"n":%d}`, i, j), nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Append(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
	}
	return scanSeekEvents(t, s)
}

func scanSeekEvents(t *testing.T, s *Store) []seekEvent {
	t.Helper()
	var evs []seekEvent
	if _, err := s.Scan(1, func(rec *codec.Record) error {
		evs = append(evs, seekEvent{rec.Position, string(rec.Stream), rec.Version, rec.Time, string(rec.Data)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.pos != uint64(i+1) {
			t.Fatalf("scan: event %d has position %d", i+1, e.pos)
		}
	}
	return evs
}

// positionAtByScan is PositionAt by brute force: the first event at or
// after want, else the committed end.
func positionAtByScan(evs []seekEvent, want int64) uint64 {
	for _, e := range evs {
		if e.time >= want {
			return e.pos
		}
	}
	return uint64(len(evs)) + 1
}

func segmentCount(t *testing.T, dir string) int {
	t.Helper()
	firsts, err := listSegments(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(firsts)
}

func TestPositionAtEmptyStore(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, seekSegSize)
	r := openReader(t, dir)
	for _, s := range []*Store{w, r} {
		for _, at := range []time.Time{time.Unix(0, 0), time.Now(), time.Now().Add(24 * time.Hour)} {
			pos, err := s.PositionAt(at)
			if err != nil || pos != 1 {
				t.Errorf("PositionAt(%v) on an empty store = %d, %v; want 1 (the committed end)", at, pos, err)
			}
		}
	}
}

// TestPositionAt checks the named cases on a store of one segment and on
// one of many sealed segments, read by the writer and by a separate
// reader.
func TestPositionAt(t *testing.T) {
	for _, segSize := range []int64{0, seekSegSize} {
		t.Run(fmt.Sprintf("segment-size=%d", segSize), func(t *testing.T) {
			dir := t.TempDir()
			evs := buildSeekStore(t, dir, segSize, 300, rand.New(rand.NewPCG(1, uint64(segSize))))
			if n := segmentCount(t, dir); segSize != 0 && n < 10 {
				t.Fatalf("%d segments: the fixture should span many", n)
			}
			first, last := evs[0], evs[len(evs)-1]
			end := last.pos + 1
			// Two consecutive batches with room between their times.
			var gapBefore, gapAfter seekEvent
			for i := 1; i < len(evs); i++ {
				if evs[i].time > evs[i-1].time+1 {
					gapBefore, gapAfter = evs[i-1], evs[i]
					break
				}
			}
			if gapAfter.pos == 0 {
				t.Fatal("no two batches with distinct times")
			}
			// The middle event's batch starts at the first event of its time.
			mid := evs[len(evs)/2]
			midFirst := positionAtByScan(evs, mid.time)
			if evs[midFirst-1].time != mid.time {
				t.Fatalf("fixture: first event of the middle batch has another time")
			}
			cases := []struct {
				name string
				at   int64
				want uint64
			}{
				{"long before all", time.Unix(0, 0).UnixNano(), 1},
				{"just before the first", first.time - 1, 1},
				{"at the first", first.time, 1},
				{"just after the first batch", first.time + 1, positionAtByScan(evs, first.time+1)},
				{"at an event in the middle", mid.time, midFirst},
				{"between two batches", gapBefore.time + 1, gapAfter.pos},
				{"at the later of two batches", gapAfter.time, gapAfter.pos},
				{"at the last", last.time, positionAtByScan(evs, last.time)},
				{"just after the last", last.time + 1, end},
				{"long after all", time.Now().Add(time.Hour).UnixNano(), end},
			}
			w := openTest(t, dir, segSize)
			r := openReader(t, dir)
			for _, s := range []*Store{w, r} {
				for _, c := range cases {
					got, err := s.PositionAt(time.Unix(0, c.at))
					if err != nil {
						t.Fatalf("%s: %v", c.name, err)
					}
					if got != c.want {
						t.Errorf("%s: PositionAt = %d, want %d", c.name, got, c.want)
					}
				}
			}
		})
	}
}

// TestPositionAtRandom compares PositionAt with a brute-force scan for
// many times: random ones across and beyond the log, each event's exact
// time, and the nanoseconds either side of it.
func TestPositionAtRandom(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	evs := buildSeekStore(t, dir, seekSegSize, 400, rng)
	t.Logf("%d events in %d segments", len(evs), segmentCount(t, dir))
	lo, hi := evs[0].time-int64(time.Millisecond), evs[len(evs)-1].time+int64(time.Millisecond)
	var times []int64
	for range 3000 {
		times = append(times, lo+rng.Int64N(hi-lo))
	}
	for _, e := range evs {
		times = append(times, e.time-1, e.time, e.time+1)
	}
	check := func(what string) {
		t.Helper()
		r := openReader(t, dir)
		for _, at := range times {
			got, err := r.PositionAt(time.Unix(0, at))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if want := positionAtByScan(evs, at); got != want {
				t.Fatalf("%s: PositionAt(%d) = %d, a scan says %d", what, at, got, want)
			}
		}
	}
	check("with offsets files")
	// The offsets files are derived: without them a seek reads the
	// records' own times, and must give the same answers.
	firsts, err := listSegments(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range firsts {
		if err := os.Remove(join(dir, offsetsName(f))); err != nil {
			t.Fatal(err)
		}
	}
	// (Slow: each lookup scans a segment; a few dozen times will do.)
	times = append(times[:40], times[3000:3030]...)
	check("without offsets files")
}

// TestPositionAtGrowing: a reader that has seeked keeps seeking right
// while a writer appends and rolls new segments under it.
func TestPositionAtGrowing(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, seekSegSize)
	r := openReader(t, dir)
	rng := rand.New(rand.NewPCG(3, 3))
	for round := range 20 {
		for range 10 {
			appendN(t, w, fmt.Sprintf("grow-%d", rng.IntN(5)), 1+rng.IntN(5))
		}
		evs := scanSeekEvents(t, r)
		for _, e := range []seekEvent{evs[0], evs[len(evs)/2], evs[len(evs)-1]} {
			for _, at := range []int64{e.time - 1, e.time, e.time + 1} {
				got, err := r.PositionAt(time.Unix(0, at))
				if err != nil {
					t.Fatal(err)
				}
				if want := positionAtByScan(evs, at); got != want {
					t.Fatalf("round %d: PositionAt(%d) = %d, a scan says %d", round, at, got, want)
				}
			}
		}
	}
	if n := segmentCount(t, dir); n < 5 {
		t.Fatalf("only %d segments: the writer should have rolled", n)
	}
}

func TestBounds(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, seekSegSize)
	r := openReader(t, dir)
	check := func(what string, wantNext uint64) {
		t.Helper()
		for name, s := range map[string]*Store{"writer": w, "reader": r} {
			first, next, err := s.Bounds()
			if err != nil {
				t.Fatalf("%s, %s: %v", what, name, err)
			}
			if first != 1 || next != wantNext {
				t.Errorf("%s, %s: Bounds = %d, %d; want 1, %d", what, name, first, next, wantNext)
			}
		}
	}
	check("empty", 1)
	appendN(t, w, "a-1", 1)
	check("one event", 2)
	for range 60 {
		appendN(t, w, "a-2", 3)
	}
	check("many segments", 2+180)
	if n := segmentCount(t, dir); n < 3 {
		t.Fatalf("%d segments, want several", n)
	}
	// A fresh reader, opened after the rolls.
	r2 := openReader(t, dir)
	if first, next, err := r2.Bounds(); err != nil || first != 1 || next != 182 {
		t.Errorf("fresh reader: Bounds = %d, %d, %v; want 1, 182", first, next, err)
	}
}

// streamByScan is a stream's events from version from on, by brute force.
func streamByScan(evs []seekEvent, stream string, from uint64) []seekEvent {
	var out []seekEvent
	for _, e := range evs {
		if e.stream == stream && e.version >= from {
			out = append(out, e)
		}
	}
	return out
}

func readStreamAll(s *Store, stream string, from uint64) ([]seekEvent, uint64, error) {
	var got []seekEvent
	v, err := s.ReadStream(stream, from, func(rec *codec.Record) error {
		got = append(got, seekEvent{rec.Position, string(rec.Stream), rec.Version, rec.Time, string(rec.Data)})
		return nil
	})
	return got, v, err
}

func TestReadStream(t *testing.T) {
	dir := t.TempDir()
	evs := buildSeekStore(t, dir, seekSegSize, 400, rand.New(rand.NewPCG(11, 11)))
	heads := map[string]uint64{}
	for _, e := range evs {
		heads[e.stream] = e.version
	}
	long := heads["long-1"]
	// The segments long-1 spans: it must be read across all of them.
	spans := map[uint64]bool{}
	w := openTest(t, dir, seekSegSize)
	c, err := w.committed()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range streamByScan(evs, "long-1", 1) {
		first, err := w.segmentFor(e.pos, &c)
		if err != nil {
			t.Fatal(err)
		}
		spans[first] = true
	}
	if len(spans) < 10 {
		t.Fatalf("long-1 spans %d segments, want many", len(spans))
	}
	t.Logf("%d events, long-1 at version %d over %d segments", len(evs), long, len(spans))

	cases := []struct {
		name   string
		stream string
		from   uint64
	}{
		{"from version 1", "long-1", 1},
		{"from version 0 (all)", "long-1", 0},
		{"from the middle", "long-1", long / 2},
		{"from the last version", "long-1", long},
		{"past the head", "long-1", long + 1},
		{"far past the head", "long-1", long + 1000},
		{"a short stream, all", "other-3", 1},
		{"a short stream, from 2", "other-3", 2},
	}
	r := openReader(t, dir)
	for _, s := range []*Store{w, r} {
		for _, c := range cases {
			got, version, err := readStreamAll(s, c.stream, c.from)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if version != heads[c.stream] {
				t.Errorf("%s: ReadStream returned version %d, want %d", c.name, version, heads[c.stream])
			}
			if want := streamByScan(evs, c.stream, max(c.from, 1)); !slices.Equal(got, want) {
				t.Errorf("%s: read %d events (%v…), a scan finds %d (%v…)", c.name, len(got), head3(got), len(want), head3(want))
			}
		}
		// Every stream, from every version, matches the scan.
		for stream, v := range heads {
			for from := uint64(1); from <= v; from += 1 + v/7 {
				got, _, err := readStreamAll(s, stream, from)
				if err != nil {
					t.Fatal(err)
				}
				if want := streamByScan(evs, stream, from); !slices.Equal(got, want) {
					t.Fatalf("%s from %d: read %d events, a scan finds %d", stream, from, len(got), len(want))
				}
			}
		}
	}

	t.Run("missing stream", func(t *testing.T) {
		called := false
		v, err := r.ReadStream("nope-1", 1, func(*codec.Record) error { called = true; return nil })
		if !errors.Is(err, log.ErrNotFound) || v != 0 || called {
			t.Fatalf("ReadStream of a missing stream = %d, %v (called %v); want 0, ErrNotFound", v, err, called)
		}
	})
	t.Run("stop early", func(t *testing.T) {
		n := 0
		v, err := r.ReadStream("long-1", 1, func(*codec.Record) error {
			n++
			if n == 5 {
				return ErrStop
			}
			return nil
		})
		if err != nil || n != 5 || v != long {
			t.Fatalf("ErrStop after 5: read %d, returned %d, %v; want 5, %d, nil", n, v, err, long)
		}
	})
	t.Run("callback error", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := r.ReadStream("long-1", 1, func(*codec.Record) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("ReadStream returned %v, want the callback's error", err)
		}
	})
	t.Run("appended after open", func(t *testing.T) {
		appendN(t, w, "long-1", 3)
		got, v, err := readStreamAll(r, "long-1", long+1)
		if err != nil || v != long+3 || len(got) != 3 || got[0].version != long+1 || got[2].version != long+3 {
			t.Fatalf("after appending 3: read %v, version %d, %v; want versions %d…%d", got, v, err, long+1, long+3)
		}
	})
}

func head3(evs []seekEvent) []seekEvent { return evs[:min(3, len(evs))] }
