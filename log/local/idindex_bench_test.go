package local

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// BenchmarkIDBatchAppend is what one `evt append` of 1,000 events with
// producer-given ids costs in a store of 100k and of 1M events (filled by
// fillStore, whose events get generated ULIDs, which are indexed too):
// open, append, close, as a process would. Invariant 5 says the sizes
// must cost the same. It reports minor page faults per batch (mapping
// pages of the tables is where the time went in SCALE.md) and the id
// index's bytes per stored event.
func BenchmarkIDBatchAppend(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("stored=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			fillStore(b, dir, n)
			data := []byte(`{"amount":50,"note":"a note of some length to make a 200 byte event, roughly"}`)
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := Open(dir, Options{Create: true, Sync: SyncNone})
				if err != nil {
					b.Fatal(err)
				}
				var batch log.Batch
				for j := 0; j < 1000; j++ {
					batch.Add(fmt.Sprintf("account-%d", j%(n/10)), "Deposited", fmt.Sprintf("bench-%d-%d", i, j), data, nil)
				}
				if _, err := s.Append(context.Background(), &batch); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			b.ReportMetric(float64(ru1.Minflt-ru0.Minflt)/float64(b.N), "minflt/op")
			var idBytes int64
			for _, name := range idIndexFiles(b, dir) {
				if st, err := os.Stat(join(dir, name)); err == nil {
					idBytes += st.Size()
				}
			}
			b.ReportMetric(float64(idBytes)/float64(n+1000*b.N), "idB/event")
		})
	}
}

// idIndexFiles names the files of dir that make up the id index.
func idIndexFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); n == idsFile || len(n) > 4 && n[len(n)-4:] == ".ids" {
			names = append(names, n)
		}
	}
	return names
}

// BenchmarkIDRunLookup is the prototype id runs' side of an append: open
// the runs of a store of n ids (in k runs) and look up 1,000 ids, as a
// fresh process would. Compare with BenchmarkIDBatchAppend.
func BenchmarkIDRunLookup(b *testing.B) {
	for _, c := range []struct{ n, k int }{{1_000_000, 1}, {1_000_000, 4}, {10_000_000, 1}, {10_000_000, 8}} {
		b.Run(fmt.Sprintf("ids=%d/runs=%d", c.n, c.k), func(b *testing.B) {
			dir := b.TempDir()
			var keys []hashKey
			var names []string
			from := uint64(1)
			for range c.k {
				ks := runKeys("account", from, c.n/c.k)
				r := writeTestRun(b, dir, from, ks)
				names = append(names, join(dir, r.name))
				keys = append(keys, ks...)
				from += uint64(len(ks))
			}
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runs := make([]*idRun, len(names))
				for j, name := range names {
					r, err := openIDRun(vfs.OS, name)
					if err != nil {
						b.Fatal(err)
					}
					runs[j] = r
				}
				for j := range 1000 {
					k := keys[(i*1000+j)*7919%len(keys)]
					n := 0
					for _, r := range runs {
						r.candidates(k, func(uint64) bool { n++; return true })
					}
					if n == 0 {
						b.Fatal("id not found")
					}
				}
				for _, r := range runs {
					r.close()
				}
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			b.ReportMetric(float64(ru1.Minflt-ru0.Minflt)/float64(b.N), "minflt/op")
		})
	}
}

// BenchmarkIDRunMerge merges 8 runs of 1M ids each (what an LSM merge
// off the append lock costs per id).
func BenchmarkIDRunMerge(b *testing.B) {
	dir := b.TempDir()
	var runs []*idRun
	from := uint64(1)
	for range 8 {
		ks := runKeys("account", from, 1_000_000)
		runs = append(runs, writeTestRun(b, dir, from, ks))
		from += uint64(len(ks))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := mergeIDRuns(vfs.OS, dir, join(dir, "merged.ids"), runs, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/8e6, "ns/id")
}
