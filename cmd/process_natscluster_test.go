package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestNatsClusterNodeKilled: on a 3-node JetStream cluster of
// nats-server processes (an R3 stream, as evt creates it there), evt
// processes flood the store with atomic batches of envelopes over two
// streams each (`evt --store nats://a,b,c/FLOOD append`, ids kept,
// retried with the same input until evt exits 0), and the stream's
// leader is SIGKILLed mid-flood. Writes must go on while it is down;
// it is then started again on its store directory and must catch up
// (its own copy, read from its monitoring endpoint, holds every
// message). `evt export` through a node that was never killed must
// show every batch exactly once and whole, at the positions its
// acknowledgement printed, positions and versions dense.
func TestNatsClusterNodeKilled(t *testing.T) {
	skipLongNats(t)
	bins := builtBinaries(t)
	nodes := natsCluster(t, bins, 3)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, strings.TrimPrefix(n.url(), "nats://"))
	}
	store := "nats://" + strings.Join(urls, ",") + "/FLOOD"
	// The first append creates the stream: R3 on a cluster of three.
	first := mustEvt(t, bins, nil, "--store", store, "append", "flood-setup", "Created", `{}`)
	if first != "1 flood-setup@1\n" {
		t.Fatalf("first append printed %q", first)
	}
	info := streamInfo(t, nodes[0].url(), "FLOOD")
	if info.Config.Replicas != 3 {
		t.Fatalf("evt created the stream with %d replicas, want 3", info.Config.Replicas)
	}

	const writers, batches, size = 4, 24, 10
	const total = writers * batches
	type ack struct {
		w, b int
		out  string // what evt printed: "POSITION STREAM@VERSION" per event
	}
	var (
		mu      sync.Mutex
		acks    []ack
		done    atomic.Int64
		retries atomic.Int64
		lastErr atomic.Value // the last failed append's stderr
		wg      sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				// Half of each batch on the writer's own stream, half
				// on a stream every writer appends to.
				var in strings.Builder
				for k := range size {
					stream := fmt.Sprintf("flood-%d", w)
					if k%2 == 1 {
						stream = fmt.Sprintf("shared-%d", b%3)
					}
					fmt.Fprintf(&in, `{"stream":%q,"type":"Flooded","id":"w%d-b%d-k%d","data":{"w":%d,"b":%d,"k":%d}}`+"\n", stream, w, b, k, w, b, k)
				}
				deadline := time.Now().Add(90 * time.Second)
				for {
					r := runBuiltEvt(t, bins, []byte(in.String()), nil, "--store", store, "--nats-timeout", "2s", "append")
					if r.code == 0 {
						mu.Lock()
						acks = append(acks, ack{w, b, r.out})
						mu.Unlock()
						done.Add(1)
						break
					}
					retries.Add(1)
					lastErr.Store(fmt.Sprintf("exit %d: %s", r.code, r.errOut))
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("writer %d batch %d: still failing: exit %d: %s", w, b, r.code, r.errOut)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}

	// Kill the stream's leader a quarter into the flood.
	waitUntil(t, "a quarter of the batches", func() bool { return done.Load() >= total/4 })
	leader := streamInfo(t, nodes[0].url(), "FLOOD").Cluster.Leader
	var victim *natsNode
	var survivors []*natsNode
	for _, n := range nodes {
		if n.name == leader {
			victim = n
		} else {
			survivors = append(survivors, n)
		}
	}
	if victim == nil {
		t.Fatalf("no node is the stream's leader %q", leader)
	}
	victim.kill()
	killed, killedAt := time.Now(), done.Load()
	// Writes go on with the leader dead (a new leader is elected).
	waitUntil(t, "batches acknowledged while a node is down", func() bool {
		if time.Since(killed) > 20*time.Second {
			t.Logf("the last failed append: %v", lastErr.Load())
		}
		return done.Load() >= killedAt+total/4
	})
	whileDown := done.Load() - killedAt
	victim.start(t, bins)
	restartedAt := done.Load()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("leader %s killed after %d of %d batches; %d acknowledged while it was down, %d after its restart; %d appends retried",
		leader, killedAt, total, whileDown, total-restartedAt, retries.Load())

	// Every node's own copy catches up with the leader, the restarted one
	// included.
	want := streamInfo(t, survivors[0].url(), "FLOOD").State
	if want.Msgs != 1+total*size {
		t.Fatalf("the stream's leader holds %d messages, want %d", want.Msgs, 1+total*size)
	}
	for _, n := range nodes {
		waitUntil(t, "node "+n.name+" catching up", func() bool {
			st, err := n.localState("FLOOD")
			return err == nil && st.Msgs == want.Msgs && st.LastSeq == want.LastSeq
		})
	}

	// Read it all back through a node that was never killed.
	events := parseExport(t, mustEvt(t, bins, nil, "--store", survivors[0].url()+"/FLOOD", "export"))
	checkFlood(t, events, total, size)
	at := map[uint64]exported{}
	for _, e := range events {
		at[e.Position] = e
	}
	for _, a := range acks {
		lines := strings.Split(strings.TrimSuffix(a.out, "\n"), "\n")
		if len(lines) != size {
			t.Fatalf("writer %d batch %d: evt printed %q", a.w, a.b, a.out)
		}
		for k, line := range lines {
			var pos uint64
			var sv string
			if _, err := fmt.Sscanf(line, "%d %s", &pos, &sv); err != nil {
				t.Fatalf("writer %d batch %d: evt printed %q", a.w, a.b, line)
			}
			e, ok := at[pos]
			if want := fmt.Sprintf("w%d-b%d-k%d", a.w, a.b, k); !ok || e.ID != want || sv != fmt.Sprintf("%s@%d", e.Stream, e.Version) {
				t.Fatalf("writer %d batch %d: event %d acknowledged as %q, but position %d holds %+v", a.w, a.b, k, line, pos, e)
			}
		}
	}
}

// checkFlood checks the export of a flood: the setup event, then total
// batches of size events, each stored once and whole in consecutive
// positions (an atomic batch is one run of sequences), positions and
// every stream's versions dense.
func checkFlood(t *testing.T, events []exported, total, size int) {
	t.Helper()
	if len(events) != 1+total*size {
		t.Fatalf("%d events exported, want %d", len(events), 1+total*size)
	}
	versions := map[string]uint64{}
	batchAt := map[string]uint64{}
	perBatch := map[string]int{}
	for i, e := range events {
		if e.Position != uint64(i+1) {
			t.Fatalf("event %d at position %d: positions not dense", i+1, e.Position)
		}
		versions[e.Stream]++
		if e.Version != versions[e.Stream] {
			t.Fatalf("position %d: %s@%d, want version %d", e.Position, e.Stream, e.Version, versions[e.Stream])
		}
		if i == 0 {
			continue
		}
		var d struct{ W, B, K int }
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("w%d-b%d", d.W, d.B)
		if d.K == 0 {
			batchAt[key] = e.Position
		}
		if e.Position != batchAt[key]+uint64(d.K) || e.ID != fmt.Sprintf("%s-k%d", key, d.K) {
			t.Fatalf("position %d: event %d of batch %s (%s), not right after the batch's others (first at %d)", e.Position, d.K, key, e.ID, batchAt[key])
		}
		perBatch[key]++
	}
	if len(perBatch) != total {
		t.Fatalf("%d batches stored, want %d", len(perBatch), total)
	}
	for key, n := range perBatch {
		if n != size {
			t.Fatalf("batch %s: %d of its %d events stored", key, n, size)
		}
	}
}

// waitUntil polls cond until it holds, failing the test after two minutes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNatsClusterReadYourWrites: on a 3-node cluster of nats-server
// processes, an event appended by an evt process connected to one node
// is read at once by evt processes connected only to another, the two
// being the stream's followers (the leader is the third node), in both
// directions, for many rounds: `tail STREAM -n 1`, `fold STREAM`, `fold
// 'cat-*'` (a consumer read), `replay --from POSITION`, `streams STREAM`,
// and an `append --expect V` that must not conflict.
func TestNatsClusterReadYourWrites(t *testing.T) {
	skipLongNats(t)
	bins := builtBinaries(t)
	nodes := natsCluster(t, bins, 3)
	mustEvt(t, bins, nil, "--store", nodes[0].url()+"/RYW", "append", "setup-1", "Created", `{}`)
	leader := streamInfo(t, nodes[0].url(), "RYW").Cluster.Leader
	var followers []string
	for _, n := range nodes {
		if n.name != leader {
			followers = append(followers, n.url()+"/RYW")
		}
	}
	rounds := 25
	if os.Getenv("EVT_NATS_RYW_ROUNDS") != "" {
		rounds, _ = strconv.Atoi(os.Getenv("EVT_NATS_RYW_ROUNDS"))
	}
	const stream = "ryw-1"
	version := uint64(0)
	var slowest time.Duration
	var slowestCmd string
	for round := range rounds {
		// Odd rounds write through the second follower, read through the first.
		a, b := followers[round%2], followers[1-round%2]
		version++
		out := mustEvt(t, bins, nil, "--store", a, "append", stream, "Set", fmt.Sprintf(`{"n":%d}`, version))
		var pos uint64
		var sv string
		if _, err := fmt.Sscanf(out, "%d %s", &pos, &sv); err != nil || sv != fmt.Sprintf("%s@%d", stream, version) {
			t.Fatalf("round %d: append printed %q, want %s@%d", round, out, stream, version)
		}
		// read runs evt through node b, keeping the slowest run for the log.
		read := func(args ...string) string {
			start := time.Now()
			out := mustEvt(t, bins, nil, append([]string{"--store", b}, args...)...)
			if d := time.Since(start); d > slowest {
				slowest, slowestCmd = d, strings.Join(args, " ")
			}
			return out
		}
		stale := func(what, got string) {
			t.Helper()
			t.Fatalf("round %d: %s through another node right after %s@%d was appended at %d: %q (a stale read)", round, what, stream, version, pos, got)
		}
		if got := read("tail", stream, "-n", "1", "-o", "json"); len(parseExport(t, got)) != 1 || parseExport(t, got)[0].Position != pos {
			stale("tail -n 1", got)
		}
		want := fmt.Sprintf(`{"stream":%q,"version":%d,"state":{"n":%d}}`+"\n", stream, version, version)
		if got := read("fold", stream); got != want {
			stale("fold", got)
		}
		if got := read("fold", "ryw-*"); got != want {
			stale("fold 'ryw-*'", got)
		}
		if got := read("replay", "--from", strconv.FormatUint(pos, 10), "-o", "json"); len(parseExport(t, got)) != 1 || parseExport(t, got)[0].Position != pos {
			stale("replay --from", got)
		}
		var head struct{ Version uint64 }
		got := read("streams", stream, "-o", "json")
		if json.Unmarshal([]byte(got), &head) != nil || head.Version != version {
			stale("streams", got)
		}
		// A read-modify-write through the other node: the head it reads
		// is the one just written.
		version++
		r := runBuiltEvt(t, bins, nil, nil, "--store", b, "append", stream, "Set", fmt.Sprintf(`{"n":%d}`, version), "--expect", strconv.FormatUint(version-1, 10), "-q")
		if r.code != 0 {
			t.Fatalf("round %d: append --expect %d through another node right after the append: exit %d: %s", round, version-1, r.code, r.errOut)
		}
	}
	t.Logf("%d rounds; the slowest read took %v (evt %s)", rounds, slowest.Round(time.Millisecond), slowestCmd)
}
