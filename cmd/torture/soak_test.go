package torture_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
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
//   - 3 `evt consume` members of a group over soak-*: member 0 runs
//     throughout, and one of the other two is SIGKILLed and restarted
//     every second or so;
//   - `evt compact` every 2 s.
//
// Then the readers get as long as they keep advancing to catch up (a
// minute without progress fails), and: every acknowledged soak-* event
// is stored once; each follower printed every soak-* event once, in
// position order; the members handled every soak-* event at least once,
// and twice only where a killed member had it (at least once), or parked
// it after its 5 deliveries all went to members that were killed; every
// line printed is a whole event, but for the last line of a member
// SIGKILLed mid-write; evt verify passes; and no follower or member's
// RSS, sampled every second from start to caught up, grows without
// bound (see checkRSS).
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

	// Each member's positions go to delivered too: the catch-up wait
	// watches it.
	delivered := &positionSet{}
	started := 0
	start := func(kind string, seen *positionSet, args ...string) *soakProc {
		c := evtCommand(t, append([]string{"--dir", dir}, args...)...)
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		started++
		return &soakProc{name: fmt.Sprintf("%s %d", kind, started), cmd: c, pos: collectPositions(out, seen)}
	}
	var tails []*soakProc
	for range followers {
		tails = append(tails, start("follower", nil, "tail", "-f", "soak-*", "--from", "start"))
	}
	var mu sync.Mutex // guards consumers, live, acks
	var consumers []*soakProc
	live := make([]*soakProc, members)
	for i := range live {
		live[i] = start("member", delivered, "consume", "soak")
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
			i := 1 + rng.Intn(members-1) // member 0 runs throughout
			mu.Lock()
			p := live[i]
			p.killed = true
			p.cmd.Process.Kill()
			p.cmd.Wait()
			live[i] = start("member", delivered, "consume", "soak")
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
	// RSS of every follower and live member, every second, until the
	// readers have caught up (a backlog is when memory would grow).
	rssOf := map[string][]int64{}
	var rssMu sync.Mutex // guards rssOf
	stopRSS := make(chan struct{})
	var rssWG sync.WaitGroup
	rssWG.Add(1)
	go func() {
		defer rssWG.Done()
		for {
			select {
			case <-stopRSS:
				return
			case <-time.After(time.Second):
			}
			mu.Lock()
			procs := append(append([]*soakProc(nil), tails...), live...)
			mu.Unlock()
			rssMu.Lock()
			for _, p := range procs {
				if kb := vmRSS(p.cmd.Process.Pid); kb > 0 {
					rssOf[p.name] = append(rssOf[p.name], kb)
				}
			}
			rssMu.Unlock()
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	mu.Lock() // the killer has stopped: consumers and live stay as they are
	mu.Unlock()
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

	// Readers catch up: they get as long as they keep advancing, and fail
	// only once nothing moved for a minute (an hour's backlog of millions
	// of events takes minutes on this machine, and a fixed wait judges the
	// machine, not evt).
	followerCount := func() (n int) {
		for _, p := range tails {
			n += p.pos.count()
		}
		return n
	}
	// An event whose deliveries all went to members that were killed is
	// parked after the group's --max-deliver (5) of them, by design (a
	// crash counts as a failed attempt): it is accounted for, not lost
	// (evt group retry brings it back).
	parked := map[uint64]string{} // position: reason
	readParked := func() {
		r := evt(t, "", "--dir", dir, "group", "parked", "soak", "-o", "json")
		if r.code != 0 {
			t.Errorf("evt group parked: exit %d: %s", r.code, r.errOut)
			return
		}
		for _, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
			var pk struct {
				Position uint64 `json:"position"`
				Reason   string `json:"reason"`
			}
			if l != "" && json.Unmarshal([]byte(l), &pk) == nil {
				parked[pk.Position] = pk.Reason
			}
		}
	}
	accounted := func() int {
		n := delivered.distinct()
		for p := range parked {
			if !delivered.has(p) {
				n++
			}
		}
		return n
	}
	caughtUp := func() bool {
		for _, p := range tails {
			if p.pos.count() < len(evs) {
				return false
			}
		}
		if delivered.distinct() < len(want) {
			readParked()
		}
		return accounted() >= len(want)
	}
	const stallLimit = time.Minute
	catchUp := time.Now()
	lastMove, lastProgress, lastLog := time.Now(), -1, time.Now()
	for !caughtUp() {
		if p := followerCount() + accounted(); p != lastProgress {
			lastMove, lastProgress = time.Now(), p
		}
		if time.Since(lastMove) > stallLimit {
			t.Errorf("the readers stalled for %s: followers printed %d of %d events each, members handled %d of %d (%d parked)",
				stallLimit, followerCounts(tails), len(evs), delivered.distinct(), len(want), len(parked))
			break
		}
		if time.Since(lastLog) > 30*time.Second {
			t.Logf("catching up: followers %v of %d, members %d of %d (%d parked)", followerCounts(tails), len(evs), delivered.distinct(), len(want), len(parked))
			lastLog = time.Now()
		}
		time.Sleep(time.Second)
	}
	if !t.Failed() {
		t.Logf("readers caught up in %s", time.Since(catchUp).Round(time.Second))
	}
	close(stopRSS)
	rssWG.Wait()
	for _, p := range append(tails, live...) {
		p.cmd.Process.Signal(syscall.SIGINT)
		if err := p.cmd.Wait(); err != nil && p.cmd.ProcessState.ExitCode() != 130 {
			t.Errorf("%s after SIGINT: %v", p.name, err)
		}
	}
	for _, p := range append(tails, consumers...) {
		<-p.pos.done
	}
	verify(t, dir)

	// Every line a process printed is a whole event, but for the last one
	// of a member SIGKILLed mid-write: a kill can cut a write(2) of many
	// lines anywhere, and that event was not acked, so it comes again.
	cut := 0
	for _, p := range append(tails, consumers...) {
		for _, l := range p.pos.bad {
			t.Errorf("%s printed %q", p.name, l)
		}
		if p.pos.partial != "" {
			if !p.killed {
				t.Errorf("%s (stopped by SIGINT) ended in a partial line %q", p.name, p.pos.partial)
			}
			cut++
		}
	}
	for _, p := range tails {
		last, seen := uint64(0), 0
		for _, pos := range p.pos.snapshot() {
			if pos <= last {
				t.Fatalf("%s: position %d after %d", p.name, pos, last)
			}
			if !want[pos] {
				t.Errorf("%s printed position %d, which the store does not hold", p.name, pos)
			}
			last = pos
			seen++
		}
		if seen != len(evs) {
			t.Errorf("%s printed %d events, the store holds %d", p.name, seen, len(evs))
		}
	}
	// Members: at least once; a second delivery only where a killed
	// member had the event.
	byKilled, bySurvivor := map[uint64]int{}, map[uint64]int{}
	for _, p := range consumers {
		for _, pos := range p.pos.snapshot() {
			if p.killed {
				byKilled[pos]++
			} else {
				bySurvivor[pos]++
			}
		}
	}
	redelivered, parkedKilled := 0, 0
	for p := range want {
		k, s := byKilled[p], bySurvivor[p]
		switch {
		case k+s == 0 && parked[p] != "":
			if !strings.Contains(parked[p], " died") && !strings.Contains(parked[p], "not acked within") {
				t.Errorf("position %d parked: %s (no handler fails here)", p, parked[p])
			}
			parkedKilled++
		case k+s == 0:
			t.Errorf("position %d was never handled", p)
		case s > 1:
			t.Errorf("position %d handled %d times by members that were not killed", p, s)
		case k+s > 1:
			redelivered += k + s - 1
		}
	}
	t.Logf("members: %d redeliveries (at least once, after kills), %d events parked after 5 deliveries to members that were killed, %d killed members' outputs ended mid-line", redelivered, parkedKilled, cut)
	tally.redeliver.Add(int64(redelivered))
	tally.crashes.Add(int64(kills))
	rssMu.Lock()
	defer rssMu.Unlock()
	checkRSS(t, rssOf)
}

func followerCounts(tails []*soakProc) []int {
	var n []int
	for _, p := range tails {
		n = append(n, p.pos.count())
	}
	return n
}

// soakProc is one long-running process of the soak: a follower or a member.
type soakProc struct {
	name   string
	cmd    *exec.Cmd
	pos    *positionCollector
	killed bool
}

// positionCollector keeps the positions of the events a process prints,
// as they come (an hour's soak prints millions of lines: their positions
// are 8 bytes each, the lines a hundred and more). A line that is not an
// event goes to bad, and what followed the last newline when the output
// ended to partial. Each position is also marked in seen, if not nil.
type positionCollector struct {
	mu      sync.Mutex
	pos     []uint64
	bad     []string // set before done closes
	partial string   // set before done closes
	done    chan struct{}
}

func collectPositions(r io.Reader, seen *positionSet) *positionCollector {
	pc := &positionCollector{done: make(chan struct{})}
	go func() {
		defer close(pc.done)
		br := bufio.NewReaderSize(r, 1<<20)
		for {
			l, err := br.ReadBytes('\n')
			if err != nil {
				pc.partial = string(l)
				return
			}
			var e struct {
				Position uint64 `json:"position"`
			}
			if json.Unmarshal(l, &e) != nil || e.Position == 0 {
				pc.bad = append(pc.bad, string(l))
				continue
			}
			pc.mu.Lock()
			pc.pos = append(pc.pos, e.Position)
			pc.mu.Unlock()
			if seen != nil {
				seen.add(e.Position)
			}
		}
	}()
	return pc
}

func (pc *positionCollector) count() int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return len(pc.pos)
}

func (pc *positionCollector) snapshot() []uint64 {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return append([]uint64(nil), pc.pos...)
}

// positionSet counts the distinct positions added to it (a bitmap: the
// soak's positions are dense, from 1).
type positionSet struct {
	mu   sync.Mutex
	bits []uint64
	n    int
}

func (s *positionSet) add(p uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := int(p / 64)
	for len(s.bits) <= w {
		s.bits = append(s.bits, 0)
	}
	if s.bits[w]&(1<<(p%64)) == 0 {
		s.bits[w] |= 1 << (p % 64)
		s.n++
	}
}

func (s *positionSet) has(p uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := int(p / 64)
	return w < len(s.bits) && s.bits[w]&(1<<(p%64)) != 0
}

func (s *positionSet) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
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

// checkRSS reports the first, last and largest RSS sample of each
// process, and fails one whose RSS grows without bound: the largest
// sample of the last quarter of its life is more than twice the largest
// of the first quarter and above 64 MiB. (A process that lived for fewer
// than 8 samples, a member killed within seconds, is only reported, as
// the largest of its kind.)
func checkRSS(t *testing.T, rssOf map[string][]int64) {
	t.Helper()
	names := make([]string, 0, len(rssOf))
	for n := range rssOf {
		names = append(names, n)
	}
	sort.Strings(names)
	shortMax, short := int64(0), 0
	for _, name := range names {
		kb := rssOf[name]
		if len(kb) < 8 {
			shortMax, short = max(shortMax, slicesMax(kb)), short+1
			continue
		}
		q := len(kb) / 4
		early, late := slicesMax(kb[:q]), slicesMax(kb[len(kb)-q:])
		t.Logf("%s: RSS first %d KiB, last %d KiB, max %d KiB (%d samples; first-quarter max %d, last-quarter max %d)",
			name, kb[0], kb[len(kb)-1], slicesMax(kb), len(kb), early, late)
		if late > 2*early && late > 64<<10 {
			t.Errorf("%s: RSS grew without bound: last quarter's max %d KiB, first quarter's %d KiB", name, late, early)
		}
	}
	if short > 0 {
		t.Logf("%d short-lived members (killed within 8 s): largest RSS %d KiB", short, shortMax)
	}
}

func slicesMax(xs []int64) int64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
