package local

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// idStore opens dir with small segments, so that a few hundred events
// seal several and the id runs are flushed and merged.
func idStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{Create: true, Sync: SyncNone, SegmentSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// appendIDs appends events with ids prefix-from … prefix-(from+n-1) to
// stream, in batches of 10, and returns how many were duplicates.
func appendIDs(t *testing.T, s *Store, stream, prefix string, from, n int) int {
	t.Helper()
	dups := 0
	for i := from; i < from+n; i += 10 {
		var b log.Batch
		for j := i; j < min(i+10, from+n); j++ {
			b.Add(stream, "T", fmt.Sprintf("%s-%d", prefix, j), []byte(`{"pad":"a little data to fill the segments faster than this"}`), nil)
		}
		res, err := s.Append(context.Background(), &b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Duplicate {
				dups++
			}
		}
	}
	return dups
}

func runCount(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, name := range idIndexFiles(t, dir) {
		if isRunName(name) {
			n++
		}
	}
	return n
}

// Ids sealed into runs, merged, and seen by a fresh process (a writer
// killed after its append) are still found: a retry is a duplicate.
func TestIDRunsRetryAfterSealAndMerge(t *testing.T) {
	dir := t.TempDir()
	s := idStore(t, dir)
	if d := appendIDs(t, s, "a", "x", 0, 1500); d != 0 {
		t.Fatalf("%d duplicates in new ids", d)
	}
	s.Close()
	if n, segs := runCount(t, dir), len(segmentFiles(t, dir)); n == 0 || n >= segs/2 {
		t.Fatalf("%d id runs after %d seals, want some, merged", n, segs)
	}
	s = idStore(t, dir) // a new process, as after a kill -9 of the last writer
	defer s.Close()
	if d := appendIDs(t, s, "a", "x", 0, 1500); d != 1500 {
		t.Fatalf("retry of 1500 stored ids: %d duplicates", d)
	}
	if d := appendIDs(t, s, "b", "x", 0, 10); d != 0 {
		t.Fatalf("same ids in another stream: %d duplicates", d)
	}
	if _, err := s.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// A seal cut off between writing its run and replacing the table (the
// run and the full table both hold the ids), and a merge cut off after
// its rename (an input run left inside the merged one), leave every id
// found.
func TestIDRunsCutShort(t *testing.T) {
	dir := t.TempDir()
	s := idStore(t, dir)
	appendIDs(t, s, "a", "x", 0, 600)
	s.Close()
	// A leftover inside a run: copy the newest run under an older-looking
	// name inside it cannot be made from outside, so duplicate the oldest
	// run's file under its own name plus one: covered by it.
	runs, err := s.listRuns()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) == 0 {
		t.Fatal("no runs")
	}
	first := runs[0]
	data, err := os.ReadFile(join(dir, first.name))
	if err != nil {
		t.Fatal(err)
	}
	closeRuns(runs)
	inner := make([]byte, idRunHeaderSize)
	copy(inner, data[:idRunHeaderSize])
	binary.LittleEndian.PutUint64(inner[8:], first.from+1)
	binary.LittleEndian.PutUint64(inner[16:], first.from+2)
	binary.LittleEndian.PutUint64(inner[24:], 0)
	binary.LittleEndian.PutUint32(inner[32:], codec.Checksum(nil))
	binary.LittleEndian.PutUint32(inner[36:], codec.Checksum(inner[:36]))
	if err := os.WriteFile(join(dir, runName(first.from+1)), inner, 0o600); err != nil {
		t.Fatal(err)
	}
	s = idStore(t, dir)
	defer s.Close()
	if d := appendIDs(t, s, "a", "x", 0, 600); d != 600 {
		t.Fatalf("retry with a leftover run: %d of 600 duplicates", d)
	}
}

// Compaction drops the ids of the events it drops, and every id of an
// event it keeps still makes a retry a duplicate; the dropped ones are
// free again.
func TestIDRunsRetryAfterCompaction(t *testing.T) {
	dir := t.TempDir()
	s := idStore(t, dir)
	defer s.Close()
	appendIDs(t, s, "gone", "g", 0, 800)
	appendIDs(t, s, "kept", "k", 0, 800)
	appendIDs(t, s, "tail", "t", 0, 50) // seals the segments above
	before := idBytes(t, dir)
	if _, err := s.Delete(context.Background(), "gone", log.Expectation{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	after := idBytes(t, dir)
	if after >= before {
		t.Fatalf("id index %d bytes before compaction, %d after", before, after)
	}
	if d := appendIDs(t, s, "kept", "k", 0, 800); d != 800 {
		t.Fatalf("retry of kept ids after compaction: %d of 800 duplicates", d)
	}
	if _, err := s.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func idBytes(t *testing.T, dir string) int64 {
	n := int64(0)
	for _, name := range idIndexFiles(t, dir) {
		if isRunName(name) {
			st, err := os.Stat(join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			n += st.Size()
		}
	}
	return n
}

// A store whose id index is a table of format 1 (written before id runs:
// every id, no runs) opens, finds its ids, and turns the table into a
// run at the next seal.
func TestIDRunsOldFormat(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Create: true, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	appendIDs(t, s, "a", "x", 0, 300)
	s.Close()
	// Rewrite the table's header as the format-1 one older evt writes.
	f, err := os.OpenFile(join(dir, idsFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, hashFixedHeader)
	f.ReadAt(hdr, 0)
	slots := binary.LittleEndian.Uint64(hdr[16:])
	f.WriteAt(encodeHashHeaderFormat(idsValues, slots, 1), 0)
	f.Close()
	if runCount(t, dir) != 0 {
		t.Fatal("runs before any seal")
	}
	s = idStore(t, dir)
	defer s.Close()
	if d := appendIDs(t, s, "a", "x", 0, 300); d != 300 {
		t.Fatalf("retry in an old-format store: %d of 300 duplicates", d)
	}
	appendIDs(t, s, "b", "y", 0, 300) // seals: the old table becomes a run
	if runCount(t, dir) == 0 {
		t.Fatal("no run after seals")
	}
	if d := appendIDs(t, s, "a", "x", 0, 300); d != 300 {
		t.Fatalf("retry after the old table became a run: %d of 300 duplicates", d)
	}
	if _, err := s.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// Repair rebuilds the table with every id, then removes the runs; ids
// stay found.
func TestIDRunsRepair(t *testing.T) {
	dir := t.TempDir()
	s := idStore(t, dir)
	appendIDs(t, s, "a", "x", 0, 600)
	c, err := s.committed()
	if err != nil {
		t.Fatal(err)
	}
	s.lock.acquire(context.Background(), s.opts.LockTimeout)
	if err := s.rebuildTables(&c); err != nil {
		t.Fatal(err)
	}
	s.lock.release()
	if n := runCount(t, dir); n != 0 {
		t.Fatalf("%d runs after a rebuild", n)
	}
	if d := appendIDs(t, s, "a", "x", 0, 600); d != 600 {
		t.Fatalf("retry after a rebuild: %d of 600 duplicates", d)
	}
	s.Close()
}

func segmentFiles(t *testing.T, dir string) []uint64 {
	t.Helper()
	firsts, err := listSegments(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	return firsts
}
