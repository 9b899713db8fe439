package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/natsjs"
)

// TestConditionWriters: eight writers, each on a connection of its own,
// enrol into a course of five seats by read, decide, append under
// --fail-if-match course-*:Enrolled --after the read's end. Each writes
// its own stream (half of them a second stream in the same batch), so
// only the condition's check on the category's filter (or on the log)
// stops two of them from taking the last seat: exactly five enrolments
// are stored.
func TestConditionWriters(t *testing.T) {
	ns := startServer(t)
	url := "nats://in-process/DCB"
	const seats, writers = 5, 8
	sel, err := codec.ParseSelection("course-*")
	if err != nil {
		t.Fatal(err)
	}
	q, err := log.ParseConditionQuery("course-*:Enrolled")
	if err != nil {
		t.Fatal(err)
	}
	stores := make([]*natsjs.Store, writers)
	for w := range stores {
		s, err := natsjs.Open(url, natsjs.Options{Create: true, Dial: []nats.Option{nats.InProcessServer(ns)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[w] = s
	}
	enrolled := func(s *natsjs.Store, to uint64) (int, error) {
		n := 0
		if to == 0 {
			return 0, nil
		}
		for rec, err := range s.Read(context.Background(), log.Query{Selection: sel, Types: []string{"Enrolled"}, To: to}) {
			if err != nil {
				return 0, err
			}
			_ = rec
			n++
		}
		return n, nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	wins := make([]int, writers)
	for w := range writers {
		wg.Go(func() {
			s := stores[w]
			for {
				_, next, err := s.Bounds()
				if err != nil {
					errs <- err
					return
				}
				n, err := enrolled(s, next-1)
				if err != nil {
					errs <- err
					return
				}
				if n >= seats {
					return
				}
				var b log.Batch
				if err := b.Add(fmt.Sprintf("course-%d", w), "Enrolled", "", []byte(`{}`), nil); err != nil {
					errs <- err
					return
				}
				if w%2 == 1 {
					if err := b.Add(fmt.Sprintf("student-%d", w), "Enrolled", "", []byte(`{}`), nil); err != nil {
						errs <- err
						return
					}
				}
				b.FailIfMatch(log.Condition{Queries: []log.ConditionQuery{q}, After: next - 1})
				_, err = s.Append(context.Background(), &b)
				switch {
				case errors.Is(err, log.ErrConflict):
				case err != nil:
					errs <- err
					return
				default:
					wins[w]++
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	_, next, err := stores[0].Bounds()
	if err != nil {
		t.Fatal(err)
	}
	n, err := enrolled(stores[0], next-1)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, k := range wins {
		total += k
	}
	if n != seats || total != seats {
		t.Fatalf("%d enrolments stored, %d appends succeeded (per writer %v), want %d", n, total, wins, seats)
	}
}
