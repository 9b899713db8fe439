package local

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

func newHashFile(t *testing.T, k int, n uint64) *hashFile {
	t.Helper()
	h, err := createHashFile(vfs.OS, filepath.Join(t.TempDir(), "table"), k, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.close() })
	return h
}

func TestHashFilePutGet(t *testing.T) {
	h := newHashFile(t, 3, 0)
	if h.slots != hashMinSlots || h.count() != 0 || h.applied() != 0 || h.moved() {
		t.Fatalf("new table: slots %d count %d applied %d moved %v", h.slots, h.count(), h.applied(), h.moved())
	}
	var got [3]uint64
	if h.get(keyOf("a"), got[:]) {
		t.Fatal("empty table has a")
	}
	h.put(keyOf("a"), []uint64{1, 2, 3})
	h.put(keyOf("b"), []uint64{4, 5, 6})
	if !h.get(keyOf("a"), got[:]) || got != [3]uint64{1, 2, 3} {
		t.Fatalf("a: %v", got)
	}
	if !h.get(keyOf("b"), got[:]) || got != [3]uint64{4, 5, 6} {
		t.Fatalf("b: %v", got)
	}
	if h.get(keyOf("c"), got[:]) {
		t.Fatal("c found")
	}
	// Overwrite keeps the count.
	h.put(keyOf("a"), []uint64{7, 8, 9})
	if !h.get(keyOf("a"), got[:]) || got != [3]uint64{7, 8, 9} {
		t.Fatalf("a after overwrite: %v", got)
	}
	if h.count() != 2 {
		t.Fatalf("count %d, want 2", h.count())
	}
	// Keys that share a home slot, or share key1 but not key2, are told
	// apart (linear probing, 128-bit keys).
	same := []hashKey{{5, 1}, {5, 2}, {5 + hashMinSlots, 1}, {6, 1}}
	for i, k := range same {
		h.put(k, []uint64{uint64(100 + i), 0, 0})
	}
	for i, k := range same {
		if !h.get(k, got[:]) || got[0] != uint64(100+i) {
			t.Fatalf("key %v: %v", k, got)
		}
	}
	if h.get(hashKey{5, 3}, got[:]) {
		t.Fatal("key {5 3} found")
	}
	// Probing wraps around the end of the table.
	last := hashKey{hashMinSlots - 1, 9}
	h.put(last, []uint64{1, 1, 1})
	h.put(hashKey{2*hashMinSlots - 1, 9}, []uint64{2, 2, 2})
	if !h.get(hashKey{2*hashMinSlots - 1, 9}, got[:]) || got[0] != 2 {
		t.Fatalf("wrapped key: %v", got)
	}

	// A fresh mapping of the same file sees everything.
	path := h.path
	if err := h.sync(); err != nil {
		t.Fatal(err)
	}
	r, err := openHashFile(vfs.OS, path, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if r.count() != h.count() || !r.get(keyOf("a"), got[:]) || got != [3]uint64{7, 8, 9} {
		t.Fatalf("reopened: count %d, a %v", r.count(), got)
	}
	// A read-only mapping sees later writes through the shared mapping.
	h.put(keyOf("late"), []uint64{42, 0, 0})
	if !r.get(keyOf("late"), got[:]) || got[0] != 42 {
		t.Fatalf("late write not visible to the other mapping: %v", got)
	}
}

func TestHashFileEach(t *testing.T) {
	h := newHashFile(t, 2, 0)
	want := map[hashKey][2]uint64{}
	for i := 0; i < 300; i++ {
		k := keyOf(fmt.Sprintf("stream-%d", i))
		want[k] = [2]uint64{uint64(i), uint64(i * i)}
		h.put(k, []uint64{uint64(i), uint64(i * i)})
	}
	got := map[hashKey][2]uint64{}
	h.each(func(k hashKey, v []uint64) bool {
		if _, dup := got[k]; dup {
			t.Errorf("key %v twice", k)
		}
		got[k] = [2]uint64(v)
		return true
	})
	if len(got) != len(want) || uint64(len(got)) != h.count() {
		t.Fatalf("each saw %d, want %d (count %d)", len(got), len(want), h.count())
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("key %v: %v, want %v", k, got[k], v)
		}
	}
	// Returning false stops the walk.
	n := 0
	h.each(func(hashKey, []uint64) bool { n++; return n < 10 })
	if n != 10 {
		t.Fatalf("each went on after false: %d calls", n)
	}
	// An empty table calls nothing.
	e := newHashFile(t, 1, 0)
	e.each(func(hashKey, []uint64) bool { t.Fatal("called on an empty table"); return false })
}

func TestHashFileApplied(t *testing.T) {
	h := newHashFile(t, 1, 0)
	h.setApplied(12345)
	if h.applied() != 12345 {
		t.Fatalf("applied %d", h.applied())
	}
	r, err := openHashFile(vfs.OS, h.path, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if r.applied() != 12345 {
		t.Fatalf("other mapping: applied %d", r.applied())
	}
	h.setApplied(20000)
	if r.applied() != 20000 {
		t.Fatalf("other mapping after update: applied %d", r.applied())
	}
	// Growing carries the watermark over.
	g, err := h.reserve(hashMinSlots)
	if err != nil {
		t.Fatal(err)
	}
	h = g
	t.Cleanup(func() { g.close() })
	if g.applied() != 20000 {
		t.Fatalf("after growth: applied %d", g.applied())
	}
}

// TestHashFileGrowth fills a table through reserve to 100k entries: it
// must grow by replacing its file, flag the replaced file as moved for
// processes still mapping it, and keep every entry.
func TestHashFileGrowth(t *testing.T) {
	const n = 100_000
	path := filepath.Join(t.TempDir(), "ids")
	h, err := createHashFile(vfs.OS, path, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { h.close() }()
	h.setApplied(7)

	// A second process's view of the original file.
	old, err := openHashFile(vfs.OS, path, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer old.close()
	oldSlots := old.slots

	growths := 0
	for i := 0; i < n; i++ {
		before := h.slots
		g, err := h.reserve(1)
		if err != nil {
			t.Fatalf("reserve at %d: %v", i, err)
		}
		if g != h {
			growths++
			if g.slots <= before {
				t.Fatalf("grew from %d to %d slots", before, g.slots)
			}
			if g.path != path {
				t.Fatalf("grown table at %s, want %s", g.path, path)
			}
			if g.moved() {
				t.Fatal("the new table is flagged moved")
			}
		}
		h = g
		h.put(keyOf(fmt.Sprintf("s-%d", i)), []uint64{uint64(i + 1)})
		if 2*h.count() > h.slots {
			t.Fatalf("load above 1/2: %d of %d", h.count(), h.slots)
		}
	}
	if growths == 0 {
		t.Fatal("never grew")
	}
	if h.count() != n {
		t.Fatalf("count %d, want %d", h.count(), n)
	}
	if h.applied() != 7 {
		t.Fatalf("applied %d after growth, want 7", h.applied())
	}
	if !old.moved() {
		t.Fatal("the replaced file is not flagged moved")
	}
	// It was filled to its limit, then left alone.
	if old.slots != oldSlots || old.count() != oldSlots/2 {
		t.Fatalf("the old mapping changed: %d slots, %d entries", old.slots, old.count())
	}
	var v [1]uint64
	for i := 0; i < n; i++ {
		if !h.get(keyOf(fmt.Sprintf("s-%d", i)), v[:]) || v[0] != uint64(i+1) {
			t.Fatalf("entry %d: %v", i, v)
		}
	}
	if _, err := os.Stat(path + ".grow"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}

	// A process opening the path now gets the grown table.
	if err := h.sync(); err != nil {
		t.Fatal(err)
	}
	fresh, err := openHashFile(vfs.OS, path, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.close()
	if fresh.count() != n || fresh.slots != h.slots || fresh.moved() {
		t.Fatalf("reopened: count %d slots %d moved %v", fresh.count(), fresh.slots, fresh.moved())
	}
	seen := 0
	fresh.each(func(k hashKey, v []uint64) bool {
		if v[0] == 0 || v[0] > n {
			t.Errorf("value %d", v[0])
		}
		seen++
		return true
	})
	if seen != n {
		t.Fatalf("each saw %d of %d", seen, n)
	}
	// reserve of a big batch at once sizes the table for it.
	more := h.slots
	g, err := h.reserve(more)
	if err != nil {
		t.Fatal(err)
	}
	h = g
	if h.slots < 2*(n+more) || h.count() != n {
		t.Fatalf("reserve(%d) gave %d slots, %d entries", more, h.slots, h.count())
	}
	if !fresh.moved() {
		t.Fatal("second replaced file is not flagged moved")
	}
}

// TestHashFileBadHeader: a table file that is not what its header says is
// ErrCorrupt naming the file, never a panic or a wild mapping.
func TestHashFileBadHeader(t *testing.T) {
	good := func(t *testing.T) []byte {
		t.Helper()
		path := filepath.Join(t.TempDir(), "good")
		h, err := createHashFile(vfs.OS, path, 3, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.put(keyOf("x"), []uint64{1, 2, 3})
		h.sync()
		h.close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	resealed := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[24:], codec.Checksum(b[:24]))
		return b
	}
	tests := []struct {
		name   string
		k      int
		damage func(b []byte) []byte
	}{
		{"empty file", 3, func(b []byte) []byte { return nil }},
		{"shorter than the header fields", 3, func(b []byte) []byte { return b[:20] }},
		{"header only", 3, func(b []byte) []byte { return b[:hashHeaderSize] }},
		{"bad magic", 3, func(b []byte) []byte { b[0] = 'X'; return resealed(b) }},
		{"checksum", 3, func(b []byte) []byte { b[24] ^= 1; return b }},
		{"slots changed without the checksum", 3, func(b []byte) []byte { b[16] ^= 4; return b }},
		{"wrong values per slot", 2, func(b []byte) []byte { return b }},
		{"values per slot resealed", 3, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], 4)
			return resealed(b)
		}},
		{"slots not a power of two", 3, func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[16:], hashMinSlots+1)
			return resealed(b)
		}},
		{"zero slots", 3, func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[16:], 0)
			return resealed(b)
		}},
		{"slots larger than the file", 3, func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[16:], 2*hashMinSlots)
			return resealed(b)
		}},
		{"slots overflowing the size", 3, func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[16:], 1<<63)
			return resealed(b)
		}},
		{"slots overflowing to the header size", 3, func(b []byte) []byte {
			// 2^63 slots of 40 bytes wrap to 0 bytes in 64 bits: the size
			// check must not be fooled into mapping 4 KiB as 2^63 slots.
			b = b[:hashHeaderSize]
			binary.LittleEndian.PutUint64(b[16:], 1<<63)
			return resealed(b)
		}},
		{"truncated slots", 3, func(b []byte) []byte { return b[:len(b)-8] }},
		{"extra bytes", 3, func(b []byte) []byte { return append(b, 0) }},
		{"all zeros", 3, func(b []byte) []byte { return make([]byte, len(b)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "heads")
			if err := os.WriteFile(path, tt.damage(good(t)), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, rw := range []bool{false, true} {
				h, err := openHashFile(vfs.OS, path, tt.k, rw)
				if err == nil {
					h.close()
					t.Fatalf("rw=%v: opened", rw)
				}
				if !errors.Is(err, log.ErrCorrupt) {
					t.Fatalf("rw=%v: %v, want ErrCorrupt", rw, err)
				}
				var ce *log.CorruptError
				if !errors.As(err, &ce) || ce.File != "heads" {
					t.Fatalf("rw=%v: %#v, want a *CorruptError naming heads", rw, err)
				}
			}
		})
	}
	// A missing file is not corruption: callers rebuild it.
	if _, err := openHashFile(vfs.OS, filepath.Join(t.TempDir(), "none"), 3, false); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
