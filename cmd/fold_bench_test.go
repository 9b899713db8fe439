package cmd

import (
	"context"
	"fmt"
	"testing"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

// BenchmarkFoldSnapshot folds one stream of 10,000 events in process:
// from the first event (no snapshot) and again from the snapshot the
// first fold saved. The issue asks the second to be at least 20× faster.
func BenchmarkFoldSnapshot(b *testing.B) {
	dir := b.TempDir()
	s, err := local.Open(dir, local.Options{Create: true, Sync: local.SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	var batch log.Batch
	for i := 0; i < 10000; i++ {
		batch.Add("long-1", "Tick", "", []byte(fmt.Sprintf(`{"n":%d,"k%d":1}`, i, i%50)), nil)
	}
	if _, err := s.Append(context.Background(), &batch); err != nil {
		b.Fatal(err)
	}
	s.Close()
	for _, c := range []struct {
		name string
		args []string
	}{
		{"first", []string{"--dir", dir, "fold", "long-1", "--no-snapshot"}},
		{"snapshot", []string{"--dir", dir, "fold", "long-1"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			ios, _, out, errOut := newTestIOStreams()
			if code := run(context.Background(), ios, []string{"--dir", dir, "fold", "long-1"}); code != 0 {
				b.Fatalf("exit %d: %s", code, errOut)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out.Reset()
				if code := run(context.Background(), ios, c.args); code != 0 {
					b.Fatalf("exit %d: %s", code, errOut)
				}
			}
		})
	}
}
