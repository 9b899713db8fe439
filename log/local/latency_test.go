package local

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// BenchmarkFollowLatency measures the time from an appender's Append
// returning to a follower (another Store on the same directory, woken by
// its Watcher) having read the event: the path of `evt tail -f`. It
// reports p50 and p99 in microseconds.
func BenchmarkFollowLatency(b *testing.B) {
	for _, poll := range []bool{false, true} {
		name := "inotify"
		if poll {
			name = "poll"
		}
		b.Run(name, func(b *testing.B) { followLatency(b, poll) })
	}
}

func followLatency(b *testing.B, poll bool) {
	dir := b.TempDir()
	w, err := Open(dir, Options{Create: true, Sync: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	watch, err := r.Watch(10*time.Millisecond, poll)
	if err != nil {
		b.Fatal(err)
	}
	defer watch.Close()
	n := b.N
	seen := make(chan time.Time, n)
	go func() {
		next := uint64(1)
		for got := 0; got < n; {
			nx, err := r.Scan(next, func(rec *codec.Record) error {
				seen <- time.Now()
				got++
				return nil
			})
			if err != nil {
				return
			}
			next = nx
			if got < n {
				watch.Wait(context.Background())
			}
		}
	}()
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		var batch log.Batch
		batch.Add("lat-1", "Tick", "", []byte(`{}`), nil)
		if _, err := w.Append(context.Background(), &batch); err != nil {
			b.Fatal(err)
		}
		returned := time.Now()
		lat = append(lat, (<-seen).Sub(returned))
		time.Sleep(time.Millisecond) // one event at a time, like a shell loop
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
