package local

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// Invariant 5 of DESIGN.md: the memory of a replay is constant, whatever
// the size of the store. A scan holds one read buffer (2 × scanChunk) and
// one record at a time, so its heap stays at a few MB for a store of any
// size.

// memoryNote pads an event to about 250 bytes on disk, as the bench's
// 200-byte NDJSON lines make.
const memoryNote = "a note of some length to make the record about as big as the benchmark's events, which are two hundred bytes as NDJSON lines"

// buildMemoryStore appends n events over n/10 streams in batches of
// 10,000 and returns the store's size on disk in bytes.
func buildMemoryStore(tb testing.TB, dir string, n int, segSize int64) int64 {
	tb.Helper()
	s, err := Open(dir, Options{Create: true, Sync: SyncNone, SegmentSize: segSize})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	for done := 0; done < n; {
		var b log.Batch
		for i := 0; i < 10000 && done < n; i++ {
			data := fmt.Appendf(nil, `{"amount":%d,"note":%q}`, done%10000, memoryNote)
			if err := b.Add("account-"+strconv.Itoa(done%(n/10+1)), "Deposited", "", data, nil); err != nil {
				tb.Fatal(err)
			}
			done++
		}
		if _, err := s.Append(context.Background(), &b); err != nil {
			tb.Fatal(err)
		}
	}
	firsts, err := listSegments(vfs.OS, dir)
	if err != nil {
		tb.Fatal(err)
	}
	var size int64
	for _, f := range firsts {
		st, err := os.Stat(join(dir, segmentName(f)))
		if err != nil {
			tb.Fatal(err)
		}
		size += st.Size()
	}
	return size
}

// scanPeakHeap scans the whole store with a fresh reader and returns the
// number of events, and the largest HeapInuse seen: before the scan
// (after a GC) and every 1,024 events during it.
func scanPeakHeap(tb testing.TB, dir string) (events uint64, before, peak uint64) {
	tb.Helper()
	r, err := Open(dir, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before, peak = ms.HeapInuse, ms.HeapInuse
	var sum int // touch each record, as a printer would
	_, err = r.Scan(1, func(rec *codec.Record) error {
		events++
		sum += len(rec.Data) + len(rec.Stream)
		if events%1024 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapInuse)
	if sum == 0 {
		tb.Fatal("scanned nothing")
	}
	return events, before, peak
}

const mb = 1 << 20

// TestScanMemoryConstant scans a store of about 40 MB, in ten segments,
// and requires the heap to stay under 32 MB throughout: a scan that held
// the store, or a segment of it per segment read, could not.
func TestScanMemoryConstant(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 40 MB store")
	}
	dir := t.TempDir()
	const n = 160_000
	size := buildMemoryStore(t, dir, n, 4<<20)
	events, before, peak := scanPeakHeap(t, dir)
	if events != n {
		t.Fatalf("scanned %d events, want %d", events, n)
	}
	t.Logf("store %.1f MB, heap in use %.1f MB before the scan, peak %.1f MB during it",
		float64(size)/mb, float64(before)/mb, float64(peak)/mb)
	if size < 32*mb {
		t.Fatalf("the store is only %.1f MB: it must be larger than the limit to show anything", float64(size)/mb)
	}
	if peak > 32*mb {
		t.Errorf("peak heap in use %.1f MB scanning a %.1f MB store, want under 32 MB (memory must not grow with the store)",
			float64(peak)/mb, float64(size)/mb)
	}
}

// BenchmarkReplayMemory scans a store of about 300 MB (EVT_BENCH_EVENTS
// events, default 1.2 million) and reports the peak heap in use during
// the scan, which should be a few MB, and the scan rate.
//
//	go test ./log -run '^$' -bench ReplayMemory -benchtime 3x
func BenchmarkReplayMemory(b *testing.B) {
	n := 1_200_000
	if v := os.Getenv("EVT_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10 {
			b.Fatalf("EVT_BENCH_EVENTS=%q: want a number of events, at least 10", v)
		}
	}
	dir := b.TempDir()
	start := time.Now()
	size := buildMemoryStore(b, dir, n, 0)
	b.Logf("built a store of %d events, %.0f MB, in %v", n, float64(size)/mb, time.Since(start).Round(time.Millisecond))
	var peak, before uint64
	scanned := uint64(0)
	for b.Loop() {
		events, bef, p := scanPeakHeap(b, dir)
		if events != uint64(n) {
			b.Fatalf("scanned %d events, want %d", events, n)
		}
		scanned += events
		peak, before = max(peak, p), max(before, bef)
	}
	b.SetBytes(size)
	b.ReportMetric(float64(peak)/mb, "peak-heap-MB")
	b.ReportMetric(float64(before)/mb, "heap-before-MB")
	b.ReportMetric(float64(size)/mb, "store-MB")
	b.ReportMetric(float64(scanned)/b.Elapsed().Seconds(), "events/s")
}

// openFiles counts this process's open file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(ents)
}

// TestScanOpenFilesBounded: like its memory, the files a reader holds
// open must not grow with the store. A replay or a long tail -f passes
// every segment; if each stayed open (with its offsets file), a store of
// a few thousand segments would exhaust the process's file limit (with
// ulimit -n 256, evt replay of a 300-segment store fails with "too many
// open files").
func TestScanOpenFilesBounded(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Create: true, SegmentSize: seekSegSize, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	const segments = 300
	for i := range segments {
		var b log.Batch
		for j := range 20 { // about 5 KB: every batch rolls a segment
			if err := b.Add(fmt.Sprintf("account-%d", j), "Deposited", "", fmt.Appendf(nil, `{"i":%d,"note":%q}`, i, memoryNote), nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Append(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if n := segmentCount(t, dir); n < segments {
		t.Fatalf("%d segments, want %d", n, segments)
	}
	r := openReader(t, dir)
	before := openFiles(t)
	n := 0
	if _, err := r.Scan(1, func(*codec.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	after := openFiles(t)
	if n != segments*20 {
		t.Fatalf("scanned %d events, want %d", n, segments*20)
	}
	t.Logf("open files: %d before the scan, %d after it (store of %d segments)", before, after, segments)
	if after-before > 64 {
		t.Errorf("a scan of %d segments left %d more files open (%d before, %d after): the reader keeps every segment it passed open (Store.segs is never trimmed), so a replay or a long tail -f runs out of file descriptors on a big store",
			segments, after-before, before, after)
	}
}
