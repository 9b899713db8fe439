package natsjs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evtdev/evt/log"
)

// BenchmarkGroupConsume drains a group of b.N events over 64 streams
// with one member, as evt consume does: "print" leases 1000 at a time
// and acks them with the next lease; "exec" leases one, acks it alone.
func BenchmarkGroupConsume(b *testing.B) {
	for _, ordering := range []string{"stream", "none"} {
		for _, shape := range []string{"print", "exec"} {
			b.Run(ordering+"/"+shape, func(b *testing.B) { benchConsume(b, ordering, shape) })
		}
	}
}

// BenchmarkRoundTrip is one request to the server and its answer: the
// unit the group numbers are made of on a loaded machine.
func BenchmarkRoundTrip(b *testing.B) {
	ns := inProcessServer(b)
	s, err := Open("nats://in-process/B", Options{Create: true, Dial: []nats.Option{nats.InProcessServer(ns)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.state(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func benchConsume(b *testing.B, ordering, shape string) {
	ns := inProcessServer(b)
	s, err := Open("nats://in-process/B", Options{Create: true, Dial: []nats.Option{nats.InProcessServer(ns)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for done := 0; done < b.N; {
		var batch log.Batch
		for i := 0; i < 500 && done < b.N; i++ {
			batch.Add(fmt.Sprintf("acct-%d", done%64), "T", "", []byte(`{}`), nil)
			done++
		}
		if _, err := s.Append(ctx, &batch); err != nil {
			b.Fatal(err)
		}
	}
	cfg := log.GroupConfig{Name: "g", Selection: "*", AckWait: time.Minute, MaxDeliver: 5, Ordering: ordering}
	if err := s.CreateGroup(ctx, cfg, 1); err != nil {
		b.Fatal(err)
	}
	g, _ := s.OpenGroup(ctx, "g")
	m, err := g.Join(ctx, log.MemberOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.ResetTimer()
	var acks []uint64
	for got := 0; got < b.N; {
		n := 1000
		if shape == "exec" {
			n = 1
		}
		ds, _, err := m.Lease(ctx, n, shape == "print", acks...)
		if err != nil {
			b.Fatal(err)
		}
		acks = acks[:0]
		for _, d := range ds {
			if shape == "exec" {
				if err := m.Ack(ctx, d.Event.Position); err != nil {
					b.Fatal(err)
				}
			} else {
				acks = append(acks, d.Event.Position)
			}
		}
		got += len(ds)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
