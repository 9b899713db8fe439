package torture_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestLoad: 16 appender processes (single appends and NDJSON batches),
// 4 `evt tail -f` followers and 4 `evt consume` members on one store at
// once, for 10 s (a minute in the full run). Then: every acknowledged
// event is stored once; every follower printed every event, positions
// strictly increasing; the members together handled every event exactly
// once (nobody crashed, so nothing is redelivered), each stream's events
// in version order. It reports events/s appended.
func TestLoad(t *testing.T) {
	const appenders, followers, members = 16, 4, 4
	dur := time.Duration(scale(10, 60)) * time.Second
	dir := filepath.Join(t.TempDir(), "store")
	mustEvt(t, "", "--dir", dir, "append", "load-0", "Started", "{}", "--id", "start")
	mustEvt(t, "", "--dir", dir, "group", "create", "load", "--from", "start")

	type reader struct {
		cmd   *exec.Cmd
		lines *lineCollector
	}
	startReader := func(args ...string) reader {
		c := evtCommand(t, append([]string{"--dir", dir}, args...)...)
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return reader{c, collectLines(out)}
	}
	var readers []reader
	for range followers {
		readers = append(readers, startReader("tail", "-f", "--from", "start"))
	}
	for range members {
		readers = append(readers, startReader("consume", "load"))
	}

	var mu sync.Mutex
	acks := map[string]acked{}
	var wg sync.WaitGroup
	begin := time.Now()
	deadline := begin.Add(dur)
	for w := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				var ids []string
				var r run
				if i%4 == 3 {
					// A batch of 20 envelopes over this writer's streams.
					var in strings.Builder
					for j := range 20 {
						id := fmt.Sprintf("w%d-%d-%d", w, i, j)
						ids = append(ids, id)
						fmt.Fprintf(&in, `{"stream":"load-%d","type":"Loaded","id":%q,"data":{"w":%d,"i":%d}}`+"\n", (w+j)%40, id, w, i)
					}
					r = evt(t, in.String(), "--dir", dir, "append")
				} else {
					id := fmt.Sprintf("w%d-%d", w, i)
					ids = []string{id}
					r = evt(t, "", "--dir", dir, "append", fmt.Sprintf("load-%d", w%40), "Loaded", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i), "--id", id)
				}
				if r.code != 0 {
					t.Errorf("appender %d: exit %d: %s", w, r.code, r.errOut)
					return
				}
				as, err := parseAcks(r.out, ids)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, a := range as {
					acks[a.stream+"\x00"+a.id] = a
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if t.Failed() {
		t.FailNow()
	}
	evs := replayAll(t, dir)
	checkAcked(t, evs, acks)
	total := len(evs)
	appended := total - 1
	tally.loadEvts.Add(int64(appended))
	tally.loadMilli.Add(elapsed.Milliseconds())
	t.Logf("%d events appended by %d processes in %.1f s: %.0f events/s, with %d followers and %d members reading",
		appended, appenders, elapsed.Seconds(), float64(appended)/elapsed.Seconds(), followers, members)

	// Readers catch up: followers print every position, the members
	// handle every event between them.
	caughtUp := func() bool {
		handled := 0
		for i, r := range readers {
			n := len(r.lines.snapshot())
			if i < followers && n < total {
				return false
			}
			if i >= followers {
				handled += n
			}
		}
		return handled >= total
	}
	if !waitFor(60*time.Second, caughtUp) {
		t.Errorf("the readers did not catch up with %d events within a minute", total)
	}
	for _, r := range readers {
		r.cmd.Process.Signal(syscall.SIGINT)
		r.cmd.Wait()
		<-r.lines.done
	}
	verify(t, dir)

	for i, r := range readers[:followers] {
		last := uint64(0)
		seen := 0
		for _, l := range r.lines.snapshot() {
			var e event
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("follower %d printed %q", i, l)
			}
			if e.Position != last+1 {
				t.Fatalf("follower %d: position %d after %d (want every position, in order)", i, e.Position, last)
			}
			last = e.Position
			seen++
		}
		if seen != total {
			t.Errorf("follower %d printed %d events, the store has %d", i, seen, total)
		}
	}
	handled := map[uint64]int{}
	for i, r := range readers[followers:] {
		versions := map[string]uint64{}
		for _, l := range r.lines.snapshot() {
			var e event
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("member %d printed %q", i, l)
			}
			handled[e.Position]++
			if e.Version <= versions[e.Stream] {
				t.Errorf("member %d: %s@%d after @%d (a stream's events out of order)", i, e.Stream, e.Version, versions[e.Stream])
			}
			versions[e.Stream] = e.Version
		}
	}
	for p := 1; p <= total; p++ {
		if handled[uint64(p)] != 1 {
			t.Errorf("position %d handled %d times by the members, want once", p, handled[uint64(p)])
		}
	}
}
