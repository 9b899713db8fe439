package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// compactedPair builds the same store twice (same events, same times)
// and compacts the first: dropped runs of every shape (a segment keeping
// one record, every other record, nearly all of them) over several sealed
// segments.
func compactedPair(t *testing.T) (compacted, plain string, base int64) {
	t.Helper()
	compacted, plain = t.TempDir(), t.TempDir()
	base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, dir := range []string{compacted, plain} {
		s := openTest(t, dir, 32<<10)
		for round := 0; round < 12; round++ {
			var b log.Batch
			for i := 0; i < 300; i++ {
				stream := fmt.Sprintf("gone-%d", i%7)
				switch {
				case round%3 == 0 && i%2 == 0, round%3 == 1 && i%50 != 0:
					stream = fmt.Sprintf("kept-%d", i%5)
				case round == 5 && i == 299:
					stream = "lone-1"
				}
				// Several events share a time, so time seeks land inside runs.
				tm := base + int64(round*300+i/3)*int64(time.Millisecond)
				if err := b.AddAt(stream, "T", fmt.Sprintf("e-%d-%d", round, i), []byte(fmt.Sprintf(`{"r":%d,"i":%d,"pad":"%080d"}`, round, i, i)), nil, tm); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Append(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 7; i++ {
			if _, err := s.Delete(context.Background(), fmt.Sprintf("gone-%d", i), log.Expectation{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Truncate(context.Background(), "kept-3", 40, log.Expectation{}); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	s := openTest(t, compacted, 32<<10)
	rep, err := s.Compact(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rewritten < 3 {
		t.Fatalf("compaction rewrote %d segments, the test needs several: %+v", rep.Rewritten, rep)
	}
	s.Close()
	return compacted, plain, base
}

// offsetsForms counts the sparse and dense offsets files of compacted
// segments in dir.
func offsetsForms(t *testing.T, dir string) (sparse, dense int) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.sidx"))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !isSparse(b) {
			t.Fatalf("%s is not a sparse offsets file", name)
		}
	}
	denseNames, _ := filepath.Glob(filepath.Join(dir, "*.*.idx"))
	return len(names), len(denseNames)
}

// TestCompactedReadsAgree: reads by position, from a position, from a
// time and the last N, at every position and many times, give the same
// events from a compacted store as from an uncompacted copy; also after
// its sparse offsets files are turned back into the dense form older
// binaries wrote, after the offsets files are deleted (the scan
// fallback), and after repair rebuilt them.
func TestCompactedReadsAgree(t *testing.T) {
	compacted, plain, base := compactedPair(t)
	sparse, dense := offsetsForms(t, compacted)
	if sparse < 2 || dense < 1 {
		t.Fatalf("%d sparse and %d dense offsets files; the test needs both forms", sparse, dense)
	}
	p := openTest(t, plain, 32<<10)
	// withOffsets is false when the offsets files are gone: verify then
	// asks for a repair, and a time search fails on a dropped position
	// (as it did before the sparse form).
	check := func(t *testing.T, dir string, withOffsets bool) {
		t.Helper()
		c := openTest(t, dir, 32<<10)
		if _, err := c.Verify(context.Background(), nil); withOffsets && err != nil {
			t.Fatalf("verify: %v", err)
		}
		_, next, err := p.Bounds()
		if err != nil {
			t.Fatal(err)
		}
		for pos := uint64(1); pos < next; pos++ {
			want, werr := p.ReadAt(pos)
			got, gerr := c.ReadAt(pos)
			if (werr == nil) != (gerr == nil) || werr == nil && !eventsEqual(want, got) {
				t.Fatalf("ReadAt(%d): got %v, %v; want %v, %v", pos, got.Position, gerr, want.Position, werr)
			}
			if gerr != nil && !errors.Is(gerr, log.ErrNotFound) {
				t.Fatalf("ReadAt(%d): %v", pos, gerr)
			}
		}
		read := func(s *Store, q log.Query, n int) []uint64 {
			t.Helper()
			var out []uint64
			for rec, err := range s.Read(context.Background(), q) {
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, rec.Position)
				if len(out) == n {
					break
				}
			}
			return out
		}
		var queries []log.Query
		for pos := uint64(1); pos <= next; pos += 7 {
			queries = append(queries, log.Query{From: codec.Cursor{Kind: codec.CursorPosition, N: pos}})
		}
		for ms := int64(-1); withOffsets && ms < 12*100+2; ms += 3 {
			queries = append(queries, log.Query{From: codec.Cursor{Kind: codec.CursorTime, Time: time.Unix(0, base+ms*int64(time.Millisecond))}})
		}
		for _, n := range []uint64{1, 2, 5, 40, 300, 1000, 5000} {
			queries = append(queries, log.Query{From: codec.Cursor{Kind: codec.CursorBeforeEnd, N: n}})
			sel, _ := codec.ParseSelection("kept-*")
			queries = append(queries, log.Query{Selection: sel, From: codec.Cursor{Kind: codec.CursorBeforeEnd, N: n}})
		}
		for _, q := range queries {
			if got, want := read(c, q, 25), read(p, q, 25); !slices.Equal(got, want) {
				t.Fatalf("read from %v: %v, want %v", q.From, got, want)
			}
		}
		for _, name := range []string{"kept-1", "kept-3", "lone-1"} {
			if got, want := streamEvents(t, c, name), streamEvents(t, p, name); !slices.Equal(positions(got), positions(want)) {
				t.Fatalf("stream %s: %v, want %v", name, positions(got), positions(want))
			}
		}
		for ms := int64(0); withOffsets && ms < 12*100; ms += 11 {
			tm := time.Unix(0, base+ms*int64(time.Millisecond))
			gp, err := c.PositionAt(tm)
			if err != nil {
				t.Fatal(err)
			}
			wp, err := p.PositionAt(tm)
			if err != nil {
				t.Fatal(err)
			}
			// The compacted store may name another position in a run of
			// dropped ones: the events from there are the same.
			if got, want := read(c, log.Query{From: codec.Cursor{Kind: codec.CursorPosition, N: gp}}, 3), read(p, log.Query{From: codec.Cursor{Kind: codec.CursorPosition, N: wp}}, 3); !slices.Equal(got, want) {
				t.Fatalf("from PositionAt(%v): %v, want %v", tm, got, want)
			}
		}
		c.Close()
	}
	t.Run("sparse", func(t *testing.T) { check(t, compacted, true) })
	t.Run("sparse, searched on disk", func(t *testing.T) {
		defer func(n int64) { sparseInMemory = n }(sparseInMemory)
		sparseInMemory = 0
		check(t, compacted, true)
	})

	t.Run("dense as older binaries wrote", func(t *testing.T) {
		names, _ := filepath.Glob(filepath.Join(compacted, "*.sidx"))
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			d, err := expandOffsets(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(strings.TrimSuffix(name, ".sidx")+".idx", d, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
		}
		check(t, compacted, true)
	})

	t.Run("no offsets files", func(t *testing.T) {
		names, _ := filepath.Glob(filepath.Join(compacted, "*.*.idx"))
		sparse, _ := filepath.Glob(filepath.Join(compacted, "*.sidx"))
		for _, name := range append(names, sparse...) {
			os.Remove(name)
		}
		check(t, compacted, false)
	})

	t.Run("repaired", func(t *testing.T) {
		c := openTest(t, compacted, 32<<10)
		if _, err := c.Repair(context.Background(), false, nil); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if s, _ := offsetsForms(t, compacted); s != sparse {
			t.Fatalf("repair wrote %d sparse offsets files, compaction %d", s, sparse)
		}
		check(t, compacted, true)
	})
}

func eventsEqual(a, b codec.Event) bool {
	return a.Position == b.Position && a.Stream == b.Stream && a.Version == b.Version && a.Type == b.Type &&
		a.Time.Equal(b.Time) && a.ID == b.ID && bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Metadata, b.Metadata)
}

// TestSparseOffsetsDamage: verify rejects a sparse offsets file that is
// not well formed or disagrees with its segment, and reads still find
// every record (a derived file is never trusted over the log).
func TestSparseOffsetsDamage(t *testing.T) {
	compacted, plain, _ := compactedPair(t)
	names, _ := filepath.Glob(filepath.Join(compacted, "*.sidx"))
	var name string
	var orig []byte
	for _, n := range names {
		b, _ := os.ReadFile(n)
		if isSparse(b) && len(b) > sparseHeaderSize+2*sparseEntrySize {
			name, orig = n, b
			break
		}
	}
	if name == "" {
		t.Fatal("no sparse offsets file with two entries")
	}
	p := openTest(t, plain, 32<<10)
	want := visibleEvents(t, p)
	damage := map[string]func(b []byte){
		"short":         func(b []byte) {},
		"offset":        func(b []byte) { b[sparseHeaderSize+sparseEntrySize+8]++ },
		"time":          func(b []byte) { b[sparseHeaderSize+sparseEntrySize+16]++ },
		"order":         func(b []byte) { b[sparseHeaderSize+sparseEntrySize] += 200 },
		"covered":       func(b []byte) { b[8]-- },
		"covers a lot":  func(b []byte) { b[12] = 1 },
		"first entry 1": func(b []byte) { b[sparseHeaderSize]++ },
	}
	for what, f := range damage {
		t.Run(what, func(t *testing.T) {
			b := slices.Clone(orig)
			if what == "short" {
				b = b[:len(b)-5]
			}
			f(b)
			if err := os.WriteFile(name, b, 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(name, orig, 0o600)
			c := openTest(t, compacted, 32<<10)
			if got := visibleEvents(t, c); !slices.Equal(positions(got), positions(want)) {
				t.Fatalf("reads: %v, want %v", positions(got), positions(want))
			}
			_, err := c.Verify(context.Background(), nil)
			var ce *log.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("verify: %v, want a damaged offsets file", err)
			}
			c.Close()
		})
	}
}
