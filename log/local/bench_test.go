package local

import (
	"context"
	"fmt"
	"testing"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// fillStore appends n events over n/10 streams in batches of 10,000.
func fillStore(b *testing.B, dir string, n int) {
	b.Helper()
	s, err := Open(dir, Options{Create: true, Sync: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := []byte(`{"amount":50,"note":"a note of some length to make a 200 byte event, roughly"}`)
	for done := 0; done < n; {
		var batch log.Batch
		for i := 0; i < 10000 && done < n; i++ {
			batch.Add(fmt.Sprintf("account-%d", done%(n/10+1)), "Deposited", "", data, nil)
			done++
		}
		if _, err := s.Append(context.Background(), &batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenAppend is what one `evt append` process costs in the
// store (open, lock, recover-check, write, publish, tables), without the
// fsync, in a store of 10 events and of a million: invariant 5 of
// DESIGN.md says the two must cost the same.
func BenchmarkOpenAppend(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		b.Run(fmt.Sprintf("stored=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			fillStore(b, dir, n)
			data := []byte(`{"amount":1}`)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := Open(dir, Options{Create: true, Sync: SyncNone})
				if err != nil {
					b.Fatal(err)
				}
				var batch log.Batch
				batch.Add("account-1", "Deposited", "", data, nil)
				batch.Expect("account-1", log.Expectation{Kind: log.ExpectExists})
				if _, err := s.Append(context.Background(), &batch); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}

// BenchmarkHead is a fresh reader asking one stream's version.
func BenchmarkHead(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		b.Run(fmt.Sprintf("stored=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			fillStore(b, dir, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := Open(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Head("account-1"); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}

// BenchmarkBatchAppend appends batches of 1,000 200-byte events.
func BenchmarkBatchAppend(b *testing.B) {
	s, err := Open(b.TempDir(), Options{Create: true, Sync: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := []byte(`{"amount":50,"note":"a note of some length to make a 200 byte event, roughly"}`)
	b.SetBytes(1000 * 200)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var batch log.Batch
		for j := 0; j < 1000; j++ {
			batch.Add(fmt.Sprintf("account-%d", j%100), "Deposited", "", data, nil)
		}
		if _, err := s.Append(context.Background(), &batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanLimits is a replay's inner loop (decode and filter every
// record) with no limits, with a cut somewhere (a heads-table lookup per
// record), and with a max-count rule on half the streams (a rule match
// and a lookup per record): the cost the limits add to every read.
func BenchmarkScanLimits(b *testing.B) {
	dir := b.TempDir()
	const n = 200_000
	fillStore(b, dir, n)
	s, err := Open(dir, Options{Create: true, Sync: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	scan := func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			seen := 0
			if _, err := s.Scan(1, func(*codec.Record) error { seen++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("none", scan)
	if _, err := s.Truncate(context.Background(), "account-1", 2, log.Expectation{}); err != nil {
		b.Fatal(err)
	}
	b.Run("cut", scan)
	if err := s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = []log.Rule{{Selection: "account-1*", MaxCount: 5}}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.Run("cut+rule", scan)
}
