package local

import (
	"context"
	"fmt"
	"testing"

	"github.com/evtdev/evt/log"
)

// BenchmarkReadAt reads events by position: in a store whose sealed
// segments compaction rewrote keeping one event in ten, and in the same
// store uncompacted.
func BenchmarkReadAt(b *testing.B) {
	for _, compact := range []bool{false, true} {
		b.Run(fmt.Sprintf("compacted=%v", compact), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{Create: true, SegmentSize: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.UpdateRetention(func(r *log.Retention) error {
				r.Rules = []log.Rule{{Selection: "drop-*", MaxCount: 1}}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			for round := 0; round < 20; round++ {
				var batch log.Batch
				for i := 0; i < 1000; i++ {
					stream := fmt.Sprintf("drop-%d", i%9)
					if i%10 == 0 {
						stream = "keep"
					}
					batch.Add(stream, "T", "", []byte(`{"pad":"0123456789012345678901234567890123456789"}`), nil)
				}
				if _, err := s.Append(context.Background(), &batch); err != nil {
					b.Fatal(err)
				}
			}
			if compact {
				if _, err := s.Compact(context.Background(), nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pos := uint64(1 + (i*7919%2000)*10) // a kept event
				if _, err := s.ReadAt(pos); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
