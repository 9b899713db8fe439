package log

import (
	"fmt"
	"testing"
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
		var batch Batch
		for i := 0; i < 10000 && done < n; i++ {
			batch.Add(fmt.Sprintf("account-%d", done%(n/10+1)), "Deposited", "", data, nil)
			done++
		}
		if _, err := s.Append(&batch); err != nil {
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
				var batch Batch
				batch.Add("account-1", "Deposited", "", data, nil)
				batch.Expect("account-1", Expectation{Kind: ExpectExists})
				if _, err := s.Append(&batch); err != nil {
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
		var batch Batch
		for j := 0; j < 1000; j++ {
			batch.Add(fmt.Sprintf("account-%d", j%100), "Deposited", "", data, nil)
		}
		if _, err := s.Append(&batch); err != nil {
			b.Fatal(err)
		}
	}
}
