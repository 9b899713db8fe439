package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/natsjs"
)

// natsServerMain is the test binary run as "nats-server PORT DIR": a
// JetStream server on 127.0.0.1:PORT storing in DIR, until it is killed.
// It is the nats-server of the module, in a process of its own, so a
// test can SIGKILL it.
func natsServerMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: nats-server PORT DIR")
		return 2
	}
	port, err := strconv.Atoi(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: args[1], NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats server not ready")
		return 1
	}
	ns.WaitForShutdown()
	return 0
}

// startNatsProcess starts the test binary as a nats-server on port with
// its store in dir and waits until it takes connections.
func startNatsProcess(t *testing.T, port int, dir string) *exec.Cmd {
	t.Helper()
	c := selfCommand(t, "nats-server", strconv.Itoa(port), dir)
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	for i := 0; ; i++ {
		conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			conn.Close()
			return c
		}
		if i > 500 {
			t.Fatalf("nats-server process on port %d: %v", port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort is a loopback TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// readNats reads every event of a nats store in position order.
func readNats(t *testing.T, url string) []*codec.Record {
	t.Helper()
	s, err := natsjs.Open(url, natsjs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sel, _ := codec.ParseSelection("*")
	var out []*codec.Record
	for rec, err := range s.Read(context.Background(), log.Query{Selection: sel}) {
		if err != nil {
			t.Fatal(err)
		}
		c := *rec
		c.Stream, c.Type, c.ID, c.Data = []byte(string(rec.Stream)), []byte(string(rec.Type)), []byte(string(rec.ID)), []byte(string(rec.Data))
		out = append(out, &c)
	}
	return out
}

// TestNatsConcurrentExpect: 8 evt processes do read-modify-write on two
// shared streams of a nats store (`evt streams`, then `evt append
// --expect V`, again on exit 3): no update is lost. Every stored event
// was written on a read of the version just before it, and each stream
// holds every writer's successful appends.
func TestNatsConcurrentExpect(t *testing.T) {
	if testing.Short() || os.Getenv("EVT_SKIP_NATS_SCRIPTS") != "" {
		t.Skip("-short or EVT_SKIP_NATS_SCRIPTS")
	}
	url := embeddedNats(t).ClientURL() + "/EXPECT"
	const count = 12
	streams := make([]string, processWriters)
	for w := range streams {
		streams[w] = fmt.Sprintf("counter-%d", w%2)
	}
	outs := runWriters(t, "expect", url, streams, count)
	conflicts := 0
	for _, o := range outs {
		n, _ := strconv.Atoi(string(o[:len(o)-1]))
		conflicts += n
	}
	events := readNats(t, url)
	if len(events) != processWriters*count {
		t.Fatalf("%d events stored, want %d", len(events), processWriters*count)
	}
	perStream := map[string]uint64{}
	for _, e := range events {
		var d struct{ W, I, Read int }
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		stream := string(e.Stream)
		perStream[stream]++
		if e.Version != perStream[stream] || uint64(d.Read) != e.Version-1 {
			t.Fatalf("position %d: %s@%d written on a read of version %d (a lost update), want version %d read %d", e.Position, stream, e.Version, d.Read, perStream[stream], e.Version-1)
		}
	}
	t.Logf("%d conflicts retried", conflicts)
	if conflicts == 0 {
		t.Log("the writers never collided (the test proves little this run)")
	}
}

// TestNatsServerKilled: four writers append batches of 10 events to a
// nats-server in a process of its own, which is SIGKILLed in the middle
// of the flood and started again on the same store directory. Each
// writer retries a batch with the same ids until it is acknowledged.
// Afterwards every acknowledged event is stored at the position its
// acknowledgement gave, every batch is there exactly once and whole
// (no partial batch), and positions and versions are dense.
func TestNatsServerKilled(t *testing.T) {
	if testing.Short() || os.Getenv("EVT_SKIP_NATS_SCRIPTS") != "" {
		t.Skip("-short or EVT_SKIP_NATS_SCRIPTS")
	}
	port, dir := freePort(t), t.TempDir()
	srv := startNatsProcess(t, port, dir)
	url := fmt.Sprintf("nats://127.0.0.1:%d/FLOOD", port)
	const writers, batches, size = 4, 16, 10
	type acked struct {
		w, b int
		res  []log.Result
	}
	var mu sync.Mutex
	var acks []acked
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		s, err := natsjs.Open(url, natsjs.Options{Create: true, Timeout: 500 * time.Millisecond,
			Dial: []nats.Option{nats.ReconnectWait(20 * time.Millisecond), nats.MaxReconnects(-1)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		wg.Go(func() {
			stream := fmt.Sprintf("flood-%d", w%2)
			for b := range batches {
				var batch log.Batch
				for k := range size {
					data := fmt.Sprintf(`{"w":%d,"b":%d,"k":%d}`, w, b, k)
					if err := batch.Add(stream, "Flooded", fmt.Sprintf("w%d-b%d-k%d", w, b, k), []byte(data), nil); err != nil {
						errs <- err
						return
					}
				}
				deadline := time.Now().Add(30 * time.Second)
				for {
					res, err := s.Append(context.Background(), &batch)
					if err == nil {
						mu.Lock()
						acks = append(acks, acked{w, b, res})
						mu.Unlock()
						done.Add(1)
						break
					}
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("writer %d batch %d: %v", w, b, err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	// Kill the server once the flood is well under way, then start it
	// again on the same directory and port.
	for done.Load() < writers*batches/4 {
		time.Sleep(time.Millisecond)
	}
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()
	killedAt := done.Load()
	time.Sleep(100 * time.Millisecond)
	restarted := time.Now()
	startNatsProcess(t, port, dir)
	wg.Wait()
	t.Logf("the writers finished %v after the restart", time.Since(restarted).Round(time.Millisecond))
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("server killed after %d acknowledged batches of %d", killedAt, writers*batches)

	events := readNats(t, url)
	if len(events) != writers*batches*size {
		t.Fatalf("%d events stored, want %d", len(events), writers*batches*size)
	}
	at := map[uint64]*codec.Record{}
	versions := map[string]uint64{}
	perBatch := map[string]int{}
	for i, e := range events {
		if e.Position != uint64(i+1) {
			t.Fatalf("event %d at position %d: positions not dense", i+1, e.Position)
		}
		stream := string(e.Stream)
		versions[stream]++
		if e.Version != versions[stream] {
			t.Fatalf("position %d: %s@%d, want version %d", e.Position, stream, e.Version, versions[stream])
		}
		var d struct{ W, B, K int }
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		perBatch[fmt.Sprintf("%d/%d", d.W, d.B)]++
		at[e.Position] = e
	}
	for key, n := range perBatch {
		if n != size {
			t.Fatalf("batch %s: %d of its %d events stored", key, n, size)
		}
	}
	for _, a := range acks {
		for k, r := range a.res {
			e := at[r.Position]
			if want := fmt.Sprintf("w%d-b%d-k%d", a.w, a.b, k); e == nil || string(e.ID) != want {
				t.Fatalf("writer %d batch %d: event %d acknowledged at position %d, which holds %v", a.w, a.b, k, r.Position, e)
			}
		}
	}
}
