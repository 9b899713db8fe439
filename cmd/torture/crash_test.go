package torture_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash test runs rounds against one store. Each round starts one to
// three victim processes at once, of kinds drawn from crashVictims, and
// SIGKILLs each at a random instant (some finish first). After every
// round it checks, before anything else touches the store:
//
//   - evt verify passes;
//   - positions are dense, versions dense per stream, no id twice;
//   - every acknowledged append (exit 0 and its output line seen) is
//     stored exactly once, where its output said;
//   - every batch is stored whole or not at all, acknowledged or not;
//   - an append that failed its --expect (exit 3) stored nothing, and
//     every stored --expect event sits right after the version it read;
//   - no consumer group hands out an acked event again: not one that a
//     member which exited 0 had handled, and not one below the group's
//     committed position as read after an earlier round. Unacked events
//     (those of a killed member) may come again: at least once.
//
// At the end of each epoch, members that exit 0 drain both groups, and
// every event must have been delivered at least once.

// crashVictim is one kind of process the crash test kills. start begins
// it; done, called after it ended, records what its client saw (only if
// it was not killed, or whatever it printed before).
type crashVictim struct {
	name     string
	maxDelay time.Duration // the kill comes at a random instant in [0, maxDelay)
	start    func(c *crashState) *victimRun
}

// victimRun is a started victim.
type victimRun struct {
	cmd  *exec.Cmd
	out  string // file its stdout goes to
	done func(exited bool, code int, out string)
}

// crashVictims are the kinds of victims. Truncate and delete are not
// among them: they hide events from the replay these checks read; a
// crash at each of their file operations is a case of TestFaults in
// log/local instead.
var crashVictims = []crashVictim{
	{"compact", 50 * time.Millisecond, func(c *crashState) *victimRun { return c.admin("compact") }},
	{"retention", 15 * time.Millisecond, (*crashState).retention},
	{"group-churn", 20 * time.Millisecond, (*crashState).groupChurn},
	{"append", 15 * time.Millisecond, (*crashState).single},
	{"append-batch", 25 * time.Millisecond, (*crashState).batch},
	{"append-expect", 15 * time.Millisecond, (*crashState).expect},
	{"append-retry", 15 * time.Millisecond, (*crashState).retry},
	{"consume", 40 * time.Millisecond, (*crashState).consumePrint},
	{"consume-exec", 120 * time.Millisecond, (*crashState).consumeExec},
	{"repair", 30 * time.Millisecond, func(c *crashState) *victimRun { return c.simple("repair") }},
}

// crashState is what the test knows of the store: what was acknowledged,
// attempted and delivered.
type crashState struct {
	t       *testing.T
	rng     *rand.Rand
	dir     string // the store
	work    string // victims' output files
	seq     int    // makes ids and file names unique
	round   int
	acks    map[string]acked    // stream\x00id → acknowledged append
	batches map[string][]string // batch name → its events' stream\x00id
	refused map[string]bool     // stream\x00id of appends that exited 3
	unsure  []retryable         // appends whose outcome the client never saw
	counter uint64              // counter-1's version at the last check
	groups  map[string]*groupTrack
	events  []event // the store at the last check
	pending []delivery
	kills   map[string]int // victims killed, by kind
}

// retryable is a single append a retry may send again.
type retryable struct{ stream, typ, data, id string }

// groupTrack is what the test saw of one consumer group.
type groupTrack struct {
	name      string
	acked     map[uint64]bool // handled by a member that then exited 0
	committed uint64          // committed position read after the last round
	delivered map[uint64]int  // how often each position was delivered
}

func (c *crashState) next() int { c.seq++; return c.seq }

func (c *crashState) command(out string, stdin *os.File, args ...string) *victimRun {
	cmd := evtCommand(c.t, append([]string{"--dir", c.dir, "--segment-size", "16384"}, args...)...)
	// Files, not pipes: Wait must not wait for a handler a killed member
	// orphaned.
	f, err := os.Create(out)
	if err != nil {
		c.t.Fatal(err)
	}
	errf, err := os.Create(out + ".err")
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, errf
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	f.Close()
	errf.Close()
	if stdin != nil {
		stdin.Close()
	}
	return &victimRun{cmd: cmd, out: out}
}

func (c *crashState) outFile(kind string) string {
	return filepath.Join(c.work, fmt.Sprintf("%s-%d", kind, c.next()))
}

// simple runs a command whose outcome needs no bookkeeping (repair).
func (c *crashState) simple(args ...string) *victimRun {
	r := c.command(c.outFile(args[0]), nil, args...)
	r.done = func(exited bool, code int, out string) {
		if exited && code != 0 {
			c.t.Errorf("evt %s: exit %d", strings.Join(args, " "), code)
		}
	}
	return r
}

// admin runs a command that changes the store but no event the checks
// track (compact, retention, groups other than the tracked two). It may
// refuse (exit 1: the compaction lock is held, the group exists; 4: no
// such group), in one
// line; it must not crash.
func (c *crashState) admin(args ...string) *victimRun {
	r := c.command(c.outFile(args[0]), nil, args...)
	out := r.out
	r.done = func(exited bool, code int, _ string) {
		errOut, _ := os.ReadFile(out + ".err")
		if exited && code != 0 && code != 1 && code != 4 || strings.Contains(string(errOut), "panic") || strings.Contains(string(errOut), "goroutine ") {
			c.t.Errorf("evt %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
	}
	return r
}

// retention sets or removes a rule on streams no event is in, so the
// rules file is written under a kill.
func (c *crashState) retention() *victimRun {
	if c.rng.Intn(2) == 0 {
		return c.admin("retention", "set", "none-*", "--max-count", strconv.Itoa(100+c.rng.Intn(100)))
	}
	return c.admin("retention", "rm", "none-*")
}

// groupChurn creates, resets or removes one of three untracked groups.
func (c *crashState) groupChurn() *victimRun {
	name := fmt.Sprintf("churn-%d", 1+c.rng.Intn(3))
	switch c.rng.Intn(3) {
	case 0:
		return c.admin("group", "create", name, "--from", "start")
	case 1:
		return c.admin("group", "reset", name, "--to", "end")
	}
	return c.admin("group", "rm", name, "--force")
}

// ack records an acknowledged append; an id acknowledged twice (a retry)
// must have been told the same position both times.
func (c *crashState) ack(a acked) {
	key := a.stream + "\x00" + a.id
	if old, ok := c.acks[key]; ok && (old.position != a.position || old.version != a.version) {
		tally.lost.Add(1)
		c.t.Errorf("id %s acknowledged at %d %s@%d and again at %d %s@%d", a.id, old.position, a.stream, old.version, a.position, a.stream, a.version)
	}
	c.acks[key] = a
}

func (c *crashState) appendDone(args []string, ids []string, r retryable) func(bool, int, string) {
	return func(exited bool, code int, out string) {
		if !exited {
			if r.id != "" {
				c.unsure = append(c.unsure, r)
			}
			return
		}
		if code != 0 {
			c.t.Errorf("evt %s: exit %d", strings.Join(args, " "), code)
			return
		}
		as, err := parseAcks(out, ids)
		if err != nil {
			c.t.Errorf("evt %s: %v", strings.Join(args, " "), err)
			return
		}
		for _, a := range as {
			c.ack(a)
		}
	}
}

// single: one event per process, with an id.
func (c *crashState) single() *victimRun {
	n := c.next()
	r := retryable{fmt.Sprintf("acct-%d", n%8), "Ticked", fmt.Sprintf(`{"n":%d}`, n), fmt.Sprintf("s%d", n)}
	args := []string{"append", r.stream, r.typ, r.data, "--id", r.id}
	v := c.command(c.outFile("append"), nil, args...)
	v.done = c.appendDone(args, []string{r.id}, r)
	return v
}

// retry: an append whose outcome was unknown, or acknowledged, sent
// again with the same id: it must be stored once.
func (c *crashState) retry() *victimRun {
	if len(c.unsure) == 0 {
		return c.single()
	}
	r := c.unsure[c.rng.Intn(len(c.unsure))]
	args := []string{"append", r.stream, r.typ, r.data, "--id", r.id}
	v := c.command(c.outFile("retry"), nil, args...)
	v.done = c.appendDone(args, []string{r.id}, retryable{})
	return v
}

// batch: one NDJSON batch of envelopes over several streams, from a file
// (evt streams it in parts) or a pipe (evt reads it whole first); now and
// then large, so that kills land inside the write.
func (c *crashState) batch() *victimRun {
	n := c.next()
	size := 1 + c.rng.Intn(40)
	if c.rng.Intn(8) == 0 {
		size = 500 + c.rng.Intn(1500)
	}
	var lines strings.Builder
	ids := make([]string, size)
	keys := make([]string, size)
	for i := range size {
		stream := fmt.Sprintf("batch-%d", c.rng.Intn(4))
		ids[i] = fmt.Sprintf("b%d-%d", n, i)
		keys[i] = stream + "\x00" + ids[i]
		fmt.Fprintf(&lines, `{"stream":%q,"type":"Batched","id":%q,"data":{"b":%d,"i":%d,"pad":"%s"}}`+"\n",
			stream, ids[i], n, i, strings.Repeat("x", c.rng.Intn(200)))
	}
	c.batches[fmt.Sprintf("b%d", n)] = keys
	in := filepath.Join(c.work, fmt.Sprintf("batch-%d.ndjson", n))
	if err := os.WriteFile(in, []byte(lines.String()), 0o600); err != nil {
		c.t.Fatal(err)
	}
	args := []string{"append"}
	var stdin *os.File
	if n%2 == 0 {
		f, err := os.Open(in) // a regular file on stdin
		if err != nil {
			c.t.Fatal(err)
		}
		stdin = f
	} else {
		pr, pw, err := os.Pipe()
		if err != nil {
			c.t.Fatal(err)
		}
		go func() {
			pw.WriteString(lines.String()) // fails with EPIPE if the victim is killed first
			pw.Close()
		}()
		stdin = pr
	}
	v := c.command(c.outFile("batch"), stdin, args...)
	v.done = c.appendDone(args, ids, retryable{})
	return v
}

// expect: a read-modify-write on counter-1 with --expect the version the
// test saw last; concurrent ones contend, and at most one can win.
func (c *crashState) expect() *victimRun {
	n := c.next()
	id := fmt.Sprintf("e%d", n)
	args := []string{"append", "counter-1", "Counted", fmt.Sprintf(`{"read":%d}`, c.counter), "--id", id, "--expect", strconv.FormatUint(c.counter, 10)}
	v := c.command(c.outFile("expect"), nil, args...)
	ok := c.appendDone(args, []string{id}, retryable{})
	v.done = func(exited bool, code int, out string) {
		if exited && code == 3 {
			c.refused["counter-1\x00"+id] = true
			return
		}
		ok(exited, code, out)
	}
	return v
}

// consumePrint: a printing member that takes what is there and exits.
func (c *crashState) consumePrint() *victimRun {
	g := c.groups["printed"]
	args := []string{"consume", g.name, "--once", "--batch", strconv.Itoa(1 + c.rng.Intn(20))}
	v := c.command(c.outFile("consume"), nil, args...)
	v.done = func(exited bool, code int, out string) {
		c.delivered(g, positionsPrinted(out), exited && code == 0)
		if exited && code != 0 {
			c.t.Errorf("evt %s: exit %d", strings.Join(args, " "), code)
		}
	}
	return v
}

// consumeExec: a member running a handler per event, which logs the
// position to the member's own file and exits 0 (the ack).
func (c *crashState) consumeExec() *victimRun {
	g := c.groups["executed"]
	log := c.outFile("handled")
	args := []string{"consume", g.name, "--once", "--batch", strconv.Itoa(1 + c.rng.Intn(3)),
		"--exec", fmt.Sprintf(`echo "$EVT_POSITION" >> %s`, log)}
	v := c.command(log+".out", nil, args...)
	v.done = func(exited bool, code int, _ string) {
		b, _ := os.ReadFile(log)
		c.delivered(g, positionsLogged(string(b)), exited && code == 0)
		if exited && code != 0 {
			c.t.Errorf("evt %s: exit %d", strings.Join(args, " "), code)
		}
	}
	return v
}

// positionsPrinted reads the positions of whole NDJSON lines (a killed
// member may leave half a line).
func positionsPrinted(out string) []uint64 {
	var ps []uint64
	for _, l := range strings.SplitAfter(out, "\n") {
		if !strings.HasSuffix(l, "\n") {
			break
		}
		var e event
		if json.Unmarshal([]byte(l), &e) == nil {
			ps = append(ps, e.Position)
		}
	}
	return ps
}

func positionsLogged(out string) []uint64 {
	var ps []uint64
	for _, l := range strings.SplitAfter(out, "\n") {
		if p, err := strconv.ParseUint(strings.TrimSpace(l), 10, 64); err == nil && strings.HasSuffix(l, "\n") {
			ps = append(ps, p)
		}
	}
	return ps
}

// delivered notes one member's deliveries; settle checks them once the
// round's members have all ended.
func (c *crashState) delivered(g *groupTrack, ps []uint64, exited0 bool) {
	c.pending = append(c.pending, delivery{g, ps, exited0})
}

// delivery is what one member of a round handled.
type delivery struct {
	g       *groupTrack
	ps      []uint64
	exited0 bool
}

// settle checks the round's deliveries against what each group had acked
// before the round (members of one round may overlap in time, so a
// killed member's delivery may precede another's ack of the same event),
// and that no two members that exited 0 both handled an event; then it
// records them.
func (c *crashState) settle() {
	byExited := map[*groupTrack]map[uint64]bool{}
	for _, d := range c.pending {
		g := d.g
		for _, p := range d.ps {
			if g.acked[p] || p < g.committed {
				tally.lost.Add(1)
				c.t.Errorf("round %d: group %s delivered position %d again after it was acked (committed %d)", c.round, g.name, p, g.committed)
			}
			if g.delivered[p] > 0 {
				tally.redeliver.Add(1)
			}
			g.delivered[p]++
			if d.exited0 {
				if byExited[g] == nil {
					byExited[g] = map[uint64]bool{}
				}
				if byExited[g][p] {
					c.t.Errorf("round %d: group %s: two members that both exited 0 handled position %d", c.round, g.name, p)
				}
				byExited[g][p] = true
			}
		}
	}
	for g, ps := range byExited {
		for p := range ps {
			g.acked[p] = true
		}
	}
	c.pending = nil
}

// runRound starts victims at once and kills each at its instant.
func (c *crashState) runRound() {
	c.round++
	n := 1 + c.rng.Intn(3)
	type started struct {
		v    crashVictim
		r    *victimRun
		kill time.Duration
	}
	var runs []started
	for range n {
		v := crashVictims[c.rng.Intn(len(crashVictims))]
		runs = append(runs, started{v, v.start(c), time.Duration(c.rng.Int63n(int64(v.maxDelay)))})
	}
	begin := time.Now()
	slices.SortFunc(runs, func(a, b started) int { return int(a.kill - b.kill) })
	for _, s := range runs {
		time.Sleep(time.Until(begin.Add(s.kill)))
		s.r.cmd.Process.Signal(syscall.SIGKILL) // a no-op error if it already exited
	}
	for _, s := range runs {
		err := s.r.cmd.Wait()
		b, _ := os.ReadFile(s.r.out)
		if killed(err) {
			tally.crashes.Add(1)
			c.kills[s.v.name]++
			s.r.done(false, -1, string(b))
			continue
		}
		s.r.done(true, s.r.cmd.ProcessState.ExitCode(), string(b))
	}
	c.settle()
}

// check runs the checks that follow every round.
func (c *crashState) check() {
	t := c.t
	t.Helper()
	verify(t, c.dir)
	evs := replayAll(t, c.dir)
	checkAcked(t, evs, c.acks)
	stored := map[string]event{}
	for _, e := range evs {
		stored[e.Stream+"\x00"+e.ID] = e
		if e.Stream == "counter-1" {
			var d struct{ Read uint64 }
			json.Unmarshal(e.Data, &d)
			if e.Version != d.Read+1 {
				t.Fatalf("position %d: counter-1@%d was appended with --expect %d", e.Position, e.Version, d.Read)
			}
			c.counter = e.Version
		}
	}
	for name, keys := range c.batches {
		n := 0
		for _, k := range keys {
			if _, ok := stored[k]; ok {
				n++
			}
		}
		if n != 0 && n != len(keys) {
			t.Fatalf("round %d: batch %s has %d of its %d events stored: a batch is all or nothing", c.round, name, n, len(keys))
		}
	}
	for k := range c.refused {
		if _, ok := stored[k]; ok {
			t.Fatalf("an append that exited 3 (expected-version conflict) was stored: %q", k)
		}
	}
	// Every group and the retention rules read after the kill.
	mustEvt(t, "", "--dir", c.dir, "group", "ls")
	mustEvt(t, "", "--dir", c.dir, "retention", "ls")
	for _, g := range c.groups {
		var show struct{ Position uint64 }
		out := mustEvt(t, "", "--dir", c.dir, "group", "show", g.name, "-o", "json")
		if err := json.Unmarshal([]byte(out), &show); err != nil {
			t.Fatalf("evt group show %s: %q: %v", g.name, out, err)
		}
		if show.Position < g.committed {
			t.Fatalf("group %s: committed position went back from %d to %d", g.name, g.committed, show.Position)
		}
		// An event delivered --max-deliver times to members killed before
		// its handler ran is parked, and the group moves past it.
		parked := c.parked(g.name)
		for p := max(g.committed, 1); p < show.Position; p++ {
			if g.delivered[p] == 0 && p <= uint64(len(evs)) && !parked[p] {
				t.Fatalf("group %s: committed past position %d, which no member was seen to handle", g.name, p)
			}
		}
		g.committed = show.Position
	}
	c.events = evs
}

// parked reads the positions group name parked.
func (c *crashState) parked(name string) map[uint64]bool {
	out := mustEvt(c.t, "", "--dir", c.dir, "group", "parked", name, "-o", "json")
	ps := map[uint64]bool{}
	for _, p := range positionsPrinted(out) {
		ps[p] = true
	}
	return ps
}

// drain lets one member per group take everything left and exit 0; after
// it every event must have been delivered at least once.
func (c *crashState) drain() {
	t := c.t
	c.round++
	for _, g := range c.groups {
		var out string
		var ps []uint64
		if g.name == "executed" {
			log := c.outFile("drain")
			mustEvt(t, "", "--dir", c.dir, "consume", g.name, "--once", "--exec", fmt.Sprintf(`echo "$EVT_POSITION" >> %s`, log))
			b, _ := os.ReadFile(log)
			ps = positionsLogged(string(b))
		} else {
			out = mustEvt(t, "", "--dir", c.dir, "consume", g.name, "--once")
			ps = positionsPrinted(out)
		}
		c.delivered(g, ps, true)
		c.settle()
		parked := c.parked(g.name)
		for p := uint64(1); p <= uint64(len(c.events)); p++ {
			if g.delivered[p] == 0 && !parked[p] {
				t.Errorf("group %s never delivered position %d", g.name, p)
			}
		}
	}
}

// TestCrash runs epochs of rounds: 1 of 40 in the short run, 5 of 300 in
// the full run, or, with EVT_TORTURE_KILLS=N, epochs of 300 rounds until
// N victims were killed (the 10,000-kill run).
func TestCrash(t *testing.T) {
	epochs, rounds := scale(1, 5), scale(40, 300)
	target := 0
	if s := os.Getenv("EVT_TORTURE_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("EVT_TORTURE_KILLS=%q: want a count of kills", s)
		}
		target, epochs, rounds = n, 1<<30, 300
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d, %d epochs of %d rounds", seed, epochs, rounds)
	rng := rand.New(rand.NewSource(seed))
	total := map[string]int{}
	killed := func() int {
		n := 0
		for _, k := range total {
			n += k
		}
		return n
	}
	defer func() { t.Logf("killed in all: %d %v", killed(), total) }()
	for epoch := range epochs {
		if target > 0 && killed() >= target {
			break
		}
		c := &crashState{t: t, rng: rng, dir: filepath.Join(t.TempDir(), "store"), work: t.TempDir(),
			acks: map[string]acked{}, batches: map[string][]string{}, refused: map[string]bool{},
			groups: map[string]*groupTrack{}, kills: map[string]int{}}
		mustEvt(t, "", "--dir", c.dir, "append", "counter-1", "Counted", `{"read":0}`, "--id", "e0")
		c.counter = 1
		for _, name := range []string{"printed", "executed"} {
			mustEvt(t, "", "--dir", c.dir, "group", "create", name, "--from", "start")
			c.groups[name] = &groupTrack{name: name, acked: map[uint64]bool{}, delivered: map[uint64]int{}}
		}
		for range rounds {
			c.runRound()
			c.check()
			if t.Failed() {
				t.Fatalf("epoch %d, round %d failed; store left in %s", epoch, c.round, c.dir)
			}
		}
		c.drain()
		t.Logf("epoch %d: %d events, %d acknowledged appends checked, killed: %v", epoch, len(c.events), len(c.acks), c.kills)
		for k, n := range c.kills {
			total[k] += n
		}
	}
}
