package torture_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSoak is the mixed load, for as long as EVT_SOAK says (a duration:
// go test ./cmd/torture -run TestSoak -v with EVT_SOAK=1h; the short run
// takes 10 s, the full run a minute). At once, on one store:
//
//   - 4 appenders: single appends with ids and NDJSON batches of 50, to
//     soak-* streams, and to tmp-* streams, which a retention rule keeps
//     at their newest 5 events;
//   - 2 `evt tail -f soak-*` followers, running throughout;
//   - 3 `evt consume` members of a group over soak-*, one SIGKILLed and
//     restarted every second or so;
//   - `evt compact` every 2 s.
//
// Then: every acknowledged soak-* event is stored once; each follower
// printed every soak-* event once, in position order; the members
// handled every soak-* event at least once, and twice only where a
// killed member had it (at least once); evt verify passes; and the RSS
// of each follower, sampled every second, is flat (the last quarter of
// the run does not exceed the second quarter by more than half plus
// 8 MiB).
func TestSoak(t *testing.T) {
	dur := time.Duration(scale(10, 60)) * time.Second
	if s := os.Getenv("EVT_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("EVT_SOAK=%q: %v", s, err)
		}
		dur = d
	}
	const appenders, followers, members = 4, 2, 3
	dir := filepath.Join(t.TempDir(), "store")
	mustEvt(t, "", "--dir", dir, "append", "soak-0", "Started", "{}", "--id", "start")
	mustEvt(t, "", "--dir", dir, "group", "create", "soak", "soak-*", "--from", "start")
	mustEvt(t, "", "--dir", dir, "retention", "set", "tmp-*", "--max-count", "5")

	type proc struct {
		cmd    *exec.Cmd
		lines  *lineCollector
		killed bool
	}
	start := func(args ...string) *proc {
		c := evtCommand(t, append([]string{"--dir", dir}, args...)...)
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return &proc{cmd: c, lines: collectLines(out)}
	}
	var tails []*proc
	for range followers {
		tails = append(tails, start("tail", "-f", "soak-*", "--from", "start"))
	}
	var mu sync.Mutex // guards consumers, acks
	var consumers []*proc
	live := make([]*proc, members)
	for i := range live {
		live[i] = start("consume", "soak")
		consumers = append(consumers, live[i])
	}
	acks := map[string]acked{}

	begin := time.Now()
	deadline := begin.Add(dur)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				var ids []string
				var r run
				if i%5 == 4 {
					var in strings.Builder
					for j := range 50 {
						id := fmt.Sprintf("w%d-%d-%d", w, i, j)
						ids = append(ids, id)
						stream := fmt.Sprintf("soak-%d", (w*7+j)%20)
						if j%10 == 9 {
							stream = fmt.Sprintf("tmp-%d", j%3)
						}
						fmt.Fprintf(&in, `{"stream":%q,"type":"Soaked","id":%q,"data":{"w":%d,"i":%d}}`+"\n", stream, id, w, i)
					}
					r = evt(t, in.String(), "--dir", dir, "append")
				} else {
					id := fmt.Sprintf("w%d-%d", w, i)
					ids = []string{id}
					r = evt(t, "", "--dir", dir, "append", fmt.Sprintf("soak-%d", (w+i)%20), "Soaked", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i), "--id", id)
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
	var bg sync.WaitGroup
	// The killer: a member dies by SIGKILL and another takes its place.
	bg.Add(1)
	kills := 0
	go func() {
		defer bg.Done()
		rng := rand.New(rand.NewSource(time.Now().UnixNano()))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(500+rng.Intn(1000)) * time.Millisecond):
			}
			i := rng.Intn(members)
			mu.Lock()
			p := live[i]
			p.killed = true
			p.cmd.Process.Kill()
			p.cmd.Wait()
			live[i] = start("consume", "soak")
			consumers = append(consumers, live[i])
			kills++
			mu.Unlock()
		}
	}()
	// Compaction, every 2 s.
	bg.Add(1)
	compactions := 0
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
			if r := evt(t, "", "--dir", dir, "compact"); r.code != 0 {
				t.Errorf("evt compact: exit %d: %s", r.code, r.errOut)
			}
			compactions++
		}
	}()
	// RSS of the followers, every second.
	rss := make([][]int64, followers)
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			for i, p := range tails {
				if kb := vmRSS(p.cmd.Process.Pid); kb > 0 {
					rss[i] = append(rss[i], kb)
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	elapsed := time.Since(begin)
	if t.Failed() {
		t.FailNow()
	}

	// The store: every acknowledged soak-* event once.
	evs := parseEvents(t, mustEvt(t, "", "--dir", dir, "replay", "soak-*"))
	soakAcks := map[string]acked{}
	for k, a := range acks {
		if strings.HasPrefix(a.stream, "soak-") {
			soakAcks[k] = a
		}
	}
	checkAcked(t, evs, soakAcks)
	want := map[uint64]bool{}
	for _, e := range evs {
		want[e.Position] = true
	}
	t.Logf("%s: %d events acknowledged (%d of soak-*), %d member kills, %d compactions, %d followers, %d members",
		elapsed.Round(time.Second), len(acks), len(soakAcks), kills, compactions, followers, members)

	// Readers catch up.
	delivered := func() map[uint64]int {
		n := map[uint64]int{}
		mu.Lock()
		defer mu.Unlock()
		for _, p := range consumers {
			for _, l := range p.lines.snapshot() {
				var e event
				if json.Unmarshal([]byte(l), &e) == nil {
					n[e.Position]++
				}
			}
		}
		return n
	}
	caughtUp := func() bool {
		for _, p := range tails {
			if len(p.lines.snapshot()) < len(evs) {
				return false
			}
		}
		got := delivered()
		for p := range want {
			if got[p] == 0 {
				return false
			}
		}
		return true
	}
	if !waitFor(2*time.Minute, caughtUp) {
		t.Errorf("the readers did not catch up with %d events within two minutes", len(evs))
	}
	for _, p := range append(tails, live...) {
		p.cmd.Process.Signal(syscall.SIGINT)
		p.cmd.Wait()
	}
	for _, p := range append(tails, consumers...) {
		<-p.lines.done
	}
	verify(t, dir)

	for i, p := range tails {
		last, seen := uint64(0), 0
		for _, l := range p.lines.snapshot() {
			var e event
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("follower %d printed %q", i, l)
			}
			if e.Position <= last {
				t.Fatalf("follower %d: position %d after %d", i, e.Position, last)
			}
			if !want[e.Position] {
				t.Errorf("follower %d printed position %d, which the store does not hold", i, e.Position)
			}
			last = e.Position
			seen++
		}
		if seen != len(evs) {
			t.Errorf("follower %d printed %d events, the store holds %d", i, seen, len(evs))
		}
	}
	// Members: at least once; a second delivery only where a killed
	// member had the event.
	byKilled, bySurvivor := map[uint64]int{}, map[uint64]int{}
	for _, p := range consumers {
		for _, l := range p.lines.snapshot() {
			var e event
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("a member printed %q", l)
			}
			if p.killed {
				byKilled[e.Position]++
			} else {
				bySurvivor[e.Position]++
			}
		}
	}
	redelivered := 0
	for p := range want {
		k, s := byKilled[p], bySurvivor[p]
		switch {
		case k+s == 0:
			t.Errorf("position %d was never handled", p)
		case s > 1:
			t.Errorf("position %d handled %d times by members that were not killed", p, s)
		case k+s > 1:
			redelivered += k + s - 1
		}
	}
	tally.redeliver.Add(int64(redelivered))
	tally.crashes.Add(int64(kills))
	for i, samples := range rss {
		checkFlat(t, fmt.Sprintf("follower %d", i), samples)
	}
}

// vmRSS is a process's resident set in KiB, or 0.
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// checkFlat: the median RSS of the last quarter of the samples is at most
// the second quarter's times 1.5 plus 8 MiB (the first quarter is the
// warm-up).
func checkFlat(t *testing.T, what string, kb []int64) {
	t.Helper()
	if len(kb) < 8 {
		t.Logf("%s: %d RSS samples, too few to judge", what, len(kb))
		return
	}
	q := len(kb) / 4
	median := func(xs []int64) int64 {
		s := append([]int64(nil), xs...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	early, late := median(kb[q:2*q]), median(kb[3*q:])
	t.Logf("%s: RSS %d KiB early, %d KiB late (%d samples, max %d)", what, early, late, len(kb), slicesMax(kb))
	if late > early*3/2+8<<10 {
		t.Errorf("%s: RSS grew from %d KiB to %d KiB", what, early, late)
	}
}

func slicesMax(xs []int64) int64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
