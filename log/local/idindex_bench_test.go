package local

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/evtdev/evt/log"
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
