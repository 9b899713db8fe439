package local

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// Regression tests for two bugs the torture suite's power-loss test
// (cmd/torture) found: the tables are mapped files whose pages reach the
// disk independently, and recovery after a restart must cope with any
// mix of their pages.

// restartStore appends batches to a new store: one event per stream
// named, each batch its own append.
func restartStore(t *testing.T, batches ...[]string) (string, []log.Result) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(dir, Options{Create: true, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var all []log.Result
	for _, streams := range batches {
		var b log.Batch
		for _, name := range streams {
			if err := b.Add(name, "T", "", []byte(`{}`), nil); err != nil {
				t.Fatal(err)
			}
		}
		res, err := s.Append(context.Background(), &b)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, res...)
	}
	return dir, all
}

// simulateRestart gives the commit file another boot id, as a restarted
// kernel has, so the next open recovers as after a power loss.
func simulateRestart(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, commitFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := readCommit(f)
	if err != nil {
		t.Fatal(err)
	}
	c.boot[0] ^= 0xff
	c.seq++
	if err := writeCommit(f, &c); err != nil {
		t.Fatal(err)
	}
}

// verifyAfterRestart opens the store as a reader (which runs the
// recovery after a restart) and runs Verify.
func verifyAfterRestart(t *testing.T, dir string) {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Verify(context.Background(), nil); err != nil {
		t.Fatalf("verify after the restart: %v", err)
	}
}

// TestRestartTornHeadsCount: the heads table's header page (its count)
// reached the disk after the second append, its slot pages only after
// the first. Recovery re-applies the streams of the second append; the
// count must then agree with the slots (it was counted twice: "heads:
// holds 8 streams, the log 5").
func TestRestartTornHeadsCount(t *testing.T) {
	dir, _ := restartStore(t, []string{"a-1", "b-1"}, []string{"c-1", "d-1", "e-1"})
	heads := filepath.Join(dir, headsFile)
	newer, err := os.ReadFile(heads)
	if err != nil {
		t.Fatal(err)
	}
	// The slot pages as they were after the first append: a-1 and b-1.
	older := make([]byte, len(newer))
	copy(older, newer[:hashHeaderSize])
	h, err := openHashFile(vfs.OS, heads, headsValues, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a-1", "b-1"} {
		off := slotOffset(h, keyOf(name))
		copy(older[off:off+h.width], newer[off:off+h.width])
	}
	h.close()
	if err := os.WriteFile(heads, older, 0o600); err != nil {
		t.Fatal(err)
	}
	simulateRestart(t, dir)
	verifyAfterRestart(t, dir)
}

// TestRestartTornIDValue: an id's slot reached the disk with its key but
// not its value (a slot can straddle two pages). Recovery took the zero
// value for an earlier position of the id and kept it: "ids: id … is
// missing or wrong".
func TestRestartTornIDValue(t *testing.T) {
	dir, res := restartStore(t, []string{"a-1", "b-1", "a-1"})
	ids := filepath.Join(dir, idsFile)
	b, err := os.ReadFile(ids)
	if err != nil {
		t.Fatal(err)
	}
	h, err := openHashFile(vfs.OS, ids, idsValues, false)
	if err != nil {
		t.Fatal(err)
	}
	off := slotOffset(h, idKey(res[1].Stream, res[1].ID))
	h.close()
	binary.LittleEndian.PutUint64(b[off+16:], 0)
	if err := os.WriteFile(ids, b, 0o600); err != nil {
		t.Fatal(err)
	}
	simulateRestart(t, dir)
	verifyAfterRestart(t, dir)
}

// slotOffset finds key's slot in h.
func slotOffset(h *hashFile, key hashKey) uint64 {
	mask := h.slots - 1
	for i := key.a & mask; ; i = (i + 1) & mask {
		off := hashHeaderSize + i*h.width
		if h.load(off) == key.a && h.load(off+8) == key.b {
			return off
		}
	}
}
