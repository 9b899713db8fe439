package natsjs

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evtdev/evt/log"
)

// TestGroupMembersOneDies runs three members of one group, each on its
// own connection as separate processes would, and a fourth that leases
// events, starts handling them and then loses its connection abruptly
// (as a process killed by SIGKILL does): every event is handled, the
// only duplicates are of events the dead member held, and each stream's
// events are handled in order. The group's ack wait is ten minutes, so
// the dead member's events can only come back by its heartbeat lapsing.
func TestGroupMembersOneDies(t *testing.T) {
	ns := inProcessServer(t)
	open := func() *Store {
		s, err := Open("nats://in-process/G", Options{Create: true, Dial: []nats.Option{nats.InProcessServer(ns)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	// Bound the whole test: it would otherwise hang, not fail, if the
	// dead member's events never came back.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const streams, perStream = 24, 12
	s := open()
	for v := range perStream {
		var b log.Batch
		for i := range streams {
			if err := b.Add(fmt.Sprintf("job-%d", i), "Ran", "", fmt.Appendf(nil, `{"v":%d}`, v), nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Append(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	_, next, err := s.Bounds()
	if err != nil {
		t.Fatal(err)
	}
	cfg := log.GroupConfig{Name: "work", Selection: "job-*", AckWait: 10 * time.Minute, MaxDeliver: 5, Ordering: "stream", Created: time.Now().UTC()}
	if err := s.CreateGroup(ctx, cfg, 1); err != nil {
		t.Fatal(err)
	}

	type handling struct {
		member  string
		pos     uint64
		stream  string
		version uint64
	}
	var mu sync.Mutex
	var handled []handling // in the order handlers started
	record := func(member string, d log.Delivery) {
		mu.Lock()
		handled = append(handled, handling{member, d.Event.Position, d.Event.Stream, d.Event.Version})
		mu.Unlock()
	}

	// The member that dies: it leases a batch, starts on every event of
	// it, and its connection goes.
	victimStore := open()
	vg, err := victimStore.OpenGroup(ctx, "work")
	if err != nil {
		t.Fatal(err)
	}
	victim, err := vg.Join(ctx, log.MemberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds, _, err := victim.Lease(ctx, 5, false)
	if err != nil || len(ds) == 0 {
		t.Fatalf("the victim's lease: %d events, %v", len(ds), err)
	}
	inFlight := map[uint64]bool{}
	for _, d := range ds {
		record("victim", d)
		inFlight[d.Event.Position] = true
	}
	victimStore.nc.Close() // abruptly: no nak, no goodbye
	defer victim.Close()

	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms := open()
			g, err := ms.OpenGroup(ctx, "work")
			if err != nil {
				errs <- err
				return
			}
			m, err := g.Join(ctx, log.MemberOptions{})
			if err != nil {
				errs <- err
				return
			}
			defer m.Close()
			name := fmt.Sprintf("member%d", i)
			for {
				select {
				case <-done:
					return
				default:
				}
				ds, _, err := m.Lease(ctx, 3, false)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
					return
				}
				if len(ds) == 0 {
					if err := m.Wait(ctx); err != nil {
						errs <- fmt.Errorf("%s: %w", name, err)
						return
					}
					continue
				}
				for _, d := range ds {
					record(name, d)
					time.Sleep(time.Millisecond) // some work
					if err := m.Ack(ctx, d.Event.Position); err != nil {
						errs <- fmt.Errorf("%s: %w", name, err)
						return
					}
				}
			}
		}()
	}
	// Done once the group's position is the end of the log.
	for {
		p, err := s.groupPosition(ctx, "work")
		if err != nil {
			t.Fatal(err)
		}
		if p >= next {
			break
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatalf("the group is at %d of %d when the test's time ran out", p, next)
		case <-time.After(50 * time.Millisecond):
		}
	}
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	seen := map[uint64]int{}
	last := map[string]handling{}
	for _, h := range handled {
		seen[h.pos]++
		if prev, ok := last[h.stream]; ok {
			switch {
			case h.version < prev.version:
				t.Errorf("%s: version %d handled by %s after version %d by %s", h.stream, h.version, h.member, prev.version, prev.member)
			case h.version == prev.version && prev.member != "victim":
				t.Errorf("%s: version %d handled twice (%s, then %s), and not because a dead member held it", h.stream, h.version, prev.member, h.member)
			}
		}
		last[h.stream] = h
	}
	for p := uint64(1); p < next; p++ {
		switch {
		case seen[p] == 0:
			t.Errorf("event %d never handled", p)
		case seen[p] > 1 && !inFlight[p]:
			t.Errorf("event %d handled %d times, and the dead member did not hold it", p, seen[p])
		}
	}
	for p := range inFlight {
		if seen[p] != 2 {
			t.Errorf("event %d, held by the dead member, handled %d times: want once more by a live member", p, seen[p])
		}
	}
}

// groupPosition is a group's committed position, through a fresh handle.
func (s *Store) groupPosition(ctx context.Context, name string) (uint64, error) {
	g, err := s.OpenGroup(ctx, name)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	return g.Position(ctx)
}
