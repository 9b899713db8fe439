package local

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/evtdev/evt/log"
)

// followUntil is a follower's loop: re-read the committed end, and wait
// for a hint until it reaches want. It returns ctx's error if the end
// never got there.
func followUntil(ctx context.Context, s *Store, w *Watcher, want uint64) error {
	for {
		_, next, err := s.Bounds()
		if err != nil {
			return err
		}
		if next >= want {
			return nil
		}
		if err := w.Wait(ctx); err != nil {
			return err
		}
	}
}

// TestWatcherWakesOnAppend: a reader watching the store sees each event
// another Store (its own Open of the same directory) appends. The poll
// interval is an hour, so only the watch can wake it before the 10 s
// guard; the latency is logged, not asserted.
func TestWatcherWakesOnAppend(t *testing.T) {
	dir := t.TempDir()
	writer := openTest(t, dir, seekSegSize) // small segments: some appends roll
	appendN(t, writer, "watched-1", 1)
	reader := openReader(t, dir)
	w, err := reader.Watch(time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.w == nil {
		t.Skip("no inotify here: the watcher polls")
	}
	const rounds = 50
	lat := make([]time.Duration, 0, rounds)
	for i := range rounds {
		want := uint64(i + 3) // the next committed end
		seen := make(chan error, 1)
		var saw time.Time
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := followUntil(ctx, reader, w, want)
			saw = time.Now()
			seen <- err
		}()
		time.Sleep(time.Millisecond) // let the follower wait
		start := time.Now()
		appendN(t, writer, "watched-1", 1)
		if err := <-seen; err != nil {
			t.Fatalf("round %d: the follower never saw position %d: %v", i, want-1, err)
		}
		lat = append(lat, saw.Sub(start))
	}
	// One notification per commit (the commit file's write), not one per
	// file a commit writes: each is a wake-up of every follower.
	if n := w.notes.Load(); n > 2*rounds {
		t.Errorf("%d appends woke the watcher %d times; want at most 2 each (the commit file only)", rounds, n)
	}
	slices.Sort(lat)
	t.Logf("append → seen by the watcher (includes the append itself): p50 %v, p90 %v, max %v",
		lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1])
}

// TestWatcherPollOnly: with pollOnly there is no watch, and a follower
// still sees another Store's appends, within the poll interval.
func TestWatcherPollOnly(t *testing.T) {
	dir := t.TempDir()
	writer := openTest(t, dir, 0)
	reader := openReader(t, dir)
	const poll = 20 * time.Millisecond
	w, err := reader.Watch(poll, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.w != nil {
		t.Fatal("pollOnly: the watcher watches the directory anyway")
	}
	// Nothing happens: Wait returns (nil) when the interval passes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Wait(ctx); err != nil {
		t.Fatalf("Wait with nothing appended: %v, want nil after the poll interval", err)
	}
	for i := range 5 {
		appended := make(chan error, 1)
		go func() {
			time.Sleep(5 * time.Millisecond)
			var b log.Batch
			b.Add("polled-1", "Happened", "", []byte(`{}`), nil)
			_, err := writer.Append(context.Background(), &b)
			appended <- err
		}()
		start := time.Now()
		if err := followUntil(ctx, reader, w, uint64(i+2)); err != nil {
			t.Fatalf("round %d: the polling follower never saw the append: %v", i, err)
		}
		if err := <-appended; err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: seen after %v (poll %v)", i, time.Since(start), poll)
	}
}

// TestWatcherWaitCancelled: Wait returns ctx's error when ctx ends first,
// whether it ends while waiting or had ended already.
func TestWatcherWaitCancelled(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, 0)
	reader := openReader(t, dir)
	for _, pollOnly := range []bool{false, true} {
		w, err := reader.Watch(time.Hour, pollOnly)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(20 * time.Millisecond)
			cancel()
		}()
		if err := w.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("pollOnly=%v: Wait after cancel = %v, want context.Canceled", pollOnly, err)
		}
		if err := w.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("pollOnly=%v: Wait on a cancelled ctx = %v, want context.Canceled", pollOnly, err)
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		if err := w.Wait(dctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("pollOnly=%v: Wait past the deadline = %v, want context.DeadlineExceeded", pollOnly, err)
		}
		dcancel()
		if err := w.Close(); err != nil {
			t.Errorf("pollOnly=%v: Close: %v", pollOnly, err)
		}
	}
}
