package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/natsjs"
)

func open(t *testing.T, ns *server.Server, url string, opts natsjs.Options) *natsjs.Store {
	t.Helper()
	opts.Dial = append(opts.Dial, nats.InProcessServer(ns))
	s, err := natsjs.Open(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func batchOf(t *testing.T, n int, stream, id string) *log.Batch {
	t.Helper()
	var b log.Batch
	for i := range n {
		eid := ""
		if id != "" {
			eid = fmt.Sprintf("%s-%d", id, i)
		}
		if err := b.Add(stream, "T", eid, []byte(`{}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	return &b
}

// TestBatchLimit: a batch above the server's atomic batch limit (1000 by
// default) is refused whole, naming the limit; one at the limit is
// stored.
func TestBatchLimit(t *testing.T) {
	ns := startServer(t)
	s := open(t, ns, "nats://in-process/LIMIT", natsjs.Options{Create: true})
	_, err := s.Append(context.Background(), batchOf(t, 1001, "big", ""))
	if !errors.Is(err, log.ErrTooLarge) || !strings.Contains(err.Error(), "max_msgs") {
		t.Fatalf("a batch of 1001: %v, want ErrTooLarge naming the limit", err)
	}
	if _, next, _ := s.Bounds(); next != 1 {
		t.Errorf("after the refused batch the log is at next %d, want 1", next)
	}
	res, err := s.Append(context.Background(), batchOf(t, 1000, "big", ""))
	if err != nil {
		t.Fatalf("a batch of 1000: %v", err)
	}
	if res[999].Position != 1000 || res[999].Version != 1000 {
		t.Errorf("last of 1000: %+v", res[999])
	}
}

// TestIDAfterCut: an id whose event a truncate cut off is appended again
// (as the local store does once compaction dropped it), even while the
// server's dedupe window still holds its Nats-Msg-Id (error 10201 for a
// batch, a duplicate acknowledgement for one message).
func TestIDAfterCut(t *testing.T) {
	ns := startServer(t)
	s := open(t, ns, "nats://in-process/CUT", natsjs.Options{Create: true})
	ctx := context.Background()
	for _, n := range []int{1, 3} {
		stream := fmt.Sprintf("s%d", n)
		if _, err := s.Append(ctx, batchOf(t, n, stream, "x")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, batchOf(t, 1, stream, "")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Truncate(context.Background(), stream, uint64(n+1), log.Expectation{}); err != nil {
			t.Fatal(err)
		}
		res, err := s.Append(ctx, batchOf(t, n, stream, "x"))
		if err != nil {
			t.Fatalf("%d ids again after their events were cut off: %v", n, err)
		}
		for i, r := range res {
			if r.Duplicate || r.Version != uint64(n+2+i) {
				t.Errorf("%d ids again: result %d %+v, want new events from version %d", n, i, r, n+2)
			}
		}
		// And now they are in the stream: a retry is a duplicate.
		again, err := s.Append(ctx, batchOf(t, n, stream, "x"))
		if err != nil || !again[0].Duplicate || again[0].Position != res[0].Position {
			t.Errorf("retry: %+v, %v; want the duplicate of %+v", again, err, res[0])
		}
	}
}

// TestRetryBeyondWindow: a retry of given ids after the server's dedupe
// window has passed is still recognised, by the id look-back.
func TestRetryBeyondWindow(t *testing.T) {
	ns := startServer(t)
	s := open(t, ns, "nats://in-process/WINDOW", natsjs.Options{Create: true, DedupeWindow: 100 * time.Millisecond})
	ctx := context.Background()
	first, err := s.Append(ctx, batchOf(t, 2, "w", "id"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past the window: the server forgot the Msg-Ids
	again, err := s.Append(ctx, batchOf(t, 2, "w", "id"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if !again[i].Duplicate || again[i].Position != first[i].Position {
			t.Errorf("retry %d: %+v, want the duplicate of %+v", i, again[i], first[i])
		}
	}
}

// TestWrongSettings: a pre-existing stream evt cannot use is refused,
// naming the setting.
func TestWrongSettings(t *testing.T) {
	ns := startServer(t)
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "AGED", Subjects: []string{"evt_AGED.>"}, MaxAge: time.Hour,
		AllowAtomicPublish: true, Metadata: map[string]string{"evt_format": "1", "evt_buckets": "256", "evt_hash": "fnv1a32"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, want string }{{"AGED", "max_age is 1h0m0s"}, {"OTHER", "its subjects are [orders.>]"}} {
		_, err := natsjs.Open("nats://in-process/"+c.name, natsjs.Options{Dial: []nats.Option{nats.InProcessServer(ns)}})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "nats: ") {
			t.Errorf("open %s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	_, err = natsjs.Open("nats://in-process/MISSING", natsjs.Options{Dial: []nats.Option{nats.InProcessServer(ns)}})
	if !errors.Is(err, log.ErrNoStore) {
		t.Errorf("open a missing stream to read: %v, want ErrNoStore", err)
	}
}

// TestUnreachable: no server is one line that starts "nats: ", within
// the timeout.
func TestUnreachable(t *testing.T) {
	_, err := natsjs.Open("nats://127.0.0.1:1/EVT", natsjs.Options{Timeout: 500 * time.Millisecond})
	if err == nil || !strings.HasPrefix(err.Error(), "nats: cannot connect to nats://127.0.0.1:1") || strings.Contains(err.Error(), "\n") {
		t.Errorf("open with no server: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct{ in, servers, stream string }{
		{"nats://a:4222", "nats://a:4222", "EVT"},
		{"nats://a:4222,b:4223/ORDERS", "nats://a:4222,nats://b:4223", "ORDERS"},
		{"tls://a:4222/X_1-2", "tls://a:4222", "X_1-2"},
	} {
		servers, stream, err := natsjs.ParseURL(c.in)
		if err != nil || servers != c.servers || stream != c.stream {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", c.in, servers, stream, err, c.servers, c.stream)
		}
	}
	for _, bad := range []string{"http://a", "nats://a/b.c", "/srv/evt"} {
		if _, _, err := natsjs.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q): no error", bad)
		}
	}
}

// TestRetryWithExpectation: a retry that carries its expectation is
// recognised at any age, beyond the id look-back too; one without is
// appended again once beyond it (the documented difference).
func TestRetryWithExpectation(t *testing.T) {
	ns := startServer(t)
	s := open(t, ns, "nats://in-process/EXPECT", natsjs.Options{Create: true, DedupeWindow: 100 * time.Millisecond, IDLookback: time.Millisecond})
	ctx := context.Background()
	b := batchOf(t, 2, "e", "id")
	b.Expect("e", log.Expectation{Kind: log.ExpectNone})
	first, err := s.Append(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	b = batchOf(t, 2, "e", "id")
	b.Expect("e", log.Expectation{Kind: log.ExpectNone})
	again, err := s.Append(ctx, b)
	if err != nil {
		t.Fatalf("retry with its expectation: %v", err)
	}
	for i := range again {
		if !again[i].Duplicate || again[i].Position != first[i].Position {
			t.Errorf("retry %d: %+v, want the duplicate of %+v", i, again[i], first[i])
		}
	}
	// A different batch that expects none is a conflict.
	b = batchOf(t, 1, "e", "other")
	b.Expect("e", log.Expectation{Kind: log.ExpectNone})
	if _, err := s.Append(ctx, b); !errors.Is(err, log.ErrConflict) {
		t.Errorf("another batch expecting none: %v, want ErrConflict", err)
	}
	res, err := s.Append(ctx, batchOf(t, 1, "e", "id"))
	if err != nil || res[0].Duplicate || res[0].Version != 3 {
		t.Errorf("a retry without expectation beyond the look-back: %+v, %v; want a new event at version 3", res, err)
	}
}

// TestMaxPayload: an event that with evt's headers is more than the
// server's max_payload (1 MiB by default, evt's record cap too) is
// refused as too large, naming the setting, and nothing is written.
func TestMaxPayload(t *testing.T) {
	ns := startServer(t)
	s := open(t, ns, "nats://in-process/PAYLOAD", natsjs.Options{Create: true})
	var b log.Batch
	data := []byte(`"` + strings.Repeat("x", 1<<20-100) + `"`)
	if err := b.Add("big", "T", "", data, nil); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(context.Background(), &b)
	if !errors.Is(err, log.ErrTooLarge) || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("an event near 1 MiB: %v, want ErrTooLarge naming max_payload", err)
	}
	if _, next, _ := s.Bounds(); next != 1 {
		t.Errorf("after the refused event the log is at next %d, want 1", next)
	}
}

// TestReadsLeaveNoConsumers: a finished read deletes the ordered
// consumer it read through. The server kept each for nats.go's inactive
// threshold (5 minutes) and takes 1000 consumers per stream, so the
// 1001st read within 5 minutes failed (an import of 11000 events over
// 10000 streams, which looks up each stream's ids, stopped there).
func TestReadsLeaveNoConsumers(t *testing.T) {
	ns := startServer(t)
	s := open(t, ns, "nats://in-process/READS", natsjs.Options{Create: true})
	ctx := context.Background()
	if _, err := s.Append(ctx, batchOf(t, 2, "s", "")); err != nil {
		t.Fatal(err)
	}
	for i := range 1100 {
		n := 0
		for _, err := range s.Read(ctx, log.Query{}) {
			if err != nil {
				t.Fatalf("read %d: %v", i+1, err)
			}
			n++
		}
		if n != 2 {
			t.Fatalf("read %d: %d events, want 2", i+1, n)
		}
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The deletes are sent without waiting for their answers.
	var left int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st, err := js.Stream(ctx, "READS")
		if err != nil {
			t.Fatal(err)
		}
		if left = st.CachedInfo().State.Consumers; left == 0 {
			return
		}
	}
	t.Errorf("%d consumers left on the server after the reads", left)
}
