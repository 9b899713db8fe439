package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// runKeys makes n distinct keys for positions from, from+1, …
func runKeys(stream string, from uint64, n int) []hashKey {
	keys := make([]hashKey, n)
	for i := range keys {
		keys[i] = idKey(stream, fmt.Sprintf("id-%d", from+uint64(i)))
	}
	return keys
}

func writeTestRun(t testing.TB, dir string, from uint64, keys []hashKey) *idRun {
	t.Helper()
	ents := make([]uint64, len(keys))
	for i, k := range keys {
		ents[i] = idEntry(k, from+uint64(i), from)
	}
	path := filepath.Join(dir, fmt.Sprintf("%020d.ids", from))
	if err := writeIDRun(vfs.OS, dir, path, from, from+uint64(len(keys)), ents); err != nil {
		t.Fatal(err)
	}
	r, err := openIDRun(vfs.OS, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

// holds reports whether r gives pos among the candidates of key.
func holds(r *idRun, key hashKey, pos uint64) bool {
	found := false
	r.candidates(key, func(p uint64) bool {
		found = p == pos
		return !found
	})
	return found
}

// Every id a run was written with is found at its position (no false
// negatives: that is what keeps idempotency exact), and ids it was not
// written with rarely give a candidate (each would cost a record read).
func TestIDRunExact(t *testing.T) {
	dir := t.TempDir()
	const n = 100_000
	keys := runKeys("s", 1, n)
	r := writeTestRun(t, dir, 1, keys)
	for i, k := range keys {
		if !holds(r, k, 1+uint64(i)) {
			t.Fatalf("id %d not found at its position", i)
		}
	}
	falses := 0
	for _, k := range runKeys("other", 1, n) {
		r.candidates(k, func(uint64) bool { falses++; return true })
	}
	// 1e5 × 1e5 / 2^32 ≈ 2.3 expected.
	if falses > 30 {
		t.Fatalf("%d false candidates for %d absent ids", falses, n)
	}
	if err := verifyIDRun(vfs.OS, filepath.Join(dir, r.name)); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, r.name))
	if st.Size() != idRunHeaderSize+8*n {
		t.Fatalf("run of %d ids is %d bytes", n, st.Size())
	}
}

// A merge keeps every entry of its inputs at its position; a merge with
// compaction's keep drops exactly the entries of dropped positions, and
// the file shrinks with them.
func TestIDRunMerge(t *testing.T) {
	dir := t.TempDir()
	var runs []*idRun
	var all []hashKey
	from := uint64(1)
	for _, n := range []int{1000, 5000, 1, 20000} {
		keys := runKeys("s", from, n)
		runs = append(runs, writeTestRun(t, dir, from, keys))
		all = append(all, keys...)
		from += uint64(n)
	}
	// The merged run replaces the first input under its name.
	path := filepath.Join(dir, runs[0].name)
	if err := mergeIDRuns(vfs.OS, dir, path, runs, nil); err != nil {
		t.Fatal(err)
	}
	m, err := openIDRun(vfs.OS, path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if m.from != 1 || m.to != from || len(m.entries) != len(all) {
		t.Fatalf("merged run [%d, %d) of %d entries, want [1, %d) of %d", m.from, m.to, len(m.entries), from, len(all))
	}
	for i, k := range all {
		if !holds(m, k, 1+uint64(i)) {
			t.Fatalf("id at position %d lost by the merge", 1+i)
		}
	}
	// Compaction: drop odd positions.
	cpath := filepath.Join(dir, "compacted.ids")
	if err := mergeIDRuns(vfs.OS, dir, cpath, []*idRun{m}, func(p uint64) bool { return p%2 == 0 }); err != nil {
		t.Fatal(err)
	}
	c, err := openIDRun(vfs.OS, cpath)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if len(c.entries) != len(all)/2 {
		t.Fatalf("compacted run holds %d entries, want %d", len(c.entries), len(all)/2)
	}
	for i, k := range all {
		p := 1 + uint64(i)
		if holds(c, k, p) != (p%2 == 0) {
			t.Fatalf("position %d: kept %v after compaction", p, !(p%2 == 0))
		}
	}
	if err := verifyIDRun(vfs.OS, cpath); err != nil {
		t.Fatal(err)
	}
}

// Runs that are not adjacent are not merged (a gap would lose ids).
func TestIDRunMergeGap(t *testing.T) {
	dir := t.TempDir()
	a := writeTestRun(t, dir, 1, runKeys("s", 1, 10))
	b := writeTestRun(t, dir, 20, runKeys("s", 20, 10))
	if err := mergeIDRuns(vfs.OS, dir, filepath.Join(dir, "m.ids"), []*idRun{a, b}, nil); err == nil {
		t.Fatal("merged runs with a gap")
	}
}

// A damaged run is reported, not read as holding nothing.
func TestIDRunCorrupt(t *testing.T) {
	dir := t.TempDir()
	r := writeTestRun(t, dir, 1, runKeys("s", 1, 100))
	path := filepath.Join(dir, r.name)
	data, _ := os.ReadFile(path)
	data[idRunHeaderSize+17] ^= 1
	os.WriteFile(path, data, 0o600)
	if err := verifyIDRun(vfs.OS, path); !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("flipped entry: %v", err)
	}
	data[9] ^= 1
	os.WriteFile(path, data, 0o600)
	if _, err := openIDRun(vfs.OS, path); !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("flipped header: %v", err)
	}
	os.WriteFile(path, data[:100], 0o600)
	if _, err := openIDRun(vfs.OS, path); !errors.Is(err, log.ErrCorrupt) {
		t.Fatalf("cut file: %v", err)
	}
}

// A run whose write fails or crashes at any step leaves either the old
// file at the name or the new, complete one, never a partial run there,
// and no temporary file once the writer saw the error.
func TestIDRunWriteFaults(t *testing.T) {
	for nth := 1; ; nth++ {
		dir := t.TempDir()
		path := filepath.Join(dir, "x.ids")
		old := runKeys("old", 1, 50)
		ents := make([]uint64, len(old))
		for i, k := range old {
			ents[i] = idEntry(k, 1+uint64(i), 1)
		}
		if err := writeIDRun(vfs.OS, dir, path, 1, 51, ents); err != nil {
			t.Fatal(err)
		}
		fsys := newFaultFS(faultRule{nth: nth, err: syscall.EIO})
		keys := runKeys("new", 1, 50)
		for i, k := range keys {
			ents[i] = idEntry(k, 1+uint64(i), 1)
		}
		err := writeIDRun(fsys, dir, path, 1, 51, ents)
		r, oerr := openIDRun(vfs.OS, path)
		if oerr != nil {
			t.Fatalf("fault at operation %d: run unreadable after: %v", nth, oerr)
		}
		isNew := holds(r, keys[7], 8)
		isOld := holds(r, old[7], 8)
		r.close()
		if isNew == isOld {
			t.Fatalf("fault at operation %d: run is neither the old nor the new one", nth)
		}
		if err != nil {
			if _, serr := os.Stat(path + ".tmp"); serr == nil {
				t.Fatalf("fault at operation %d: temporary file left", nth)
			}
		}
		if fsys.fired == "" {
			if err != nil || !isNew {
				t.Fatalf("no fault: %v", err)
			}
			break
		}
	}
}
