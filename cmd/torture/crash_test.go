package torture_test

import (
	"encoding/json"
	"fmt"
	"io"
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
//     member which exited 0 had handled, or that an `evt ack` which
//     exited 0 acked, and not one below the group's committed position
//     as read after an earlier round. Unacked events (those of a killed
//     member or a killed ack) may come again: at least once;
//   - every event of an import that exited 0 is stored once; an import
//     is all or nothing, and sending one again adds nothing;
//   - a deleted or truncated stream holds all its events or exactly
//     those its command kept (the latter if it exited 0), and once cut
//     stays cut.
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

// crashVictims are the kinds of victims. Truncate and delete work on
// doomed-N streams of their own (made just before, by a process that is
// not killed), so the checks know which positions may vanish.
var crashVictims = []crashVictim{
	{"delete", 15 * time.Millisecond, (*crashState).delete},
	{"truncate", 15 * time.Millisecond, (*crashState).truncate},
	{"import", 30 * time.Millisecond, (*crashState).importFile},
	{"ack", 15 * time.Millisecond, (*crashState).manualAck},
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

	doomed      []*doomedStream // streams a delete or truncate was sent to
	doomedPos   map[uint64]bool // positions of their events
	tombstones  int             // delete and truncate processes started (each may take a position)
	imported    map[string]bool // stream\x00id of events of imports that exited 0
	importFiles []importFile    // every file an import was started with, to send again
	manualAcked []delivery      // positions `evt ack` acked this round (it exited 0)
}

// doomedStream is a stream made for one delete or truncate: versions
// 1..n, of which the command removes those below cut (all for delete).
// Once its process ended the stream holds either all n or versions
// cut..n; once cut it stays cut.
type doomedStream struct {
	name    string
	n, cut  uint64
	acked   bool   // the command exited 0
	settled string // "whole" or "cut", as the last check saw it
}

// importFile is an NDJSON export an import was started with.
type importFile struct {
	path string
	keys []string // stream\x00id of its events
}

// manualAckWait is the --ack-wait of the group whose events `evt ack`
// acks: a lease a killed ack leaves behind ends this soon.
const manualAckWait = 2 * time.Second

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

// doom makes a stream of 1 to 5 events for a delete or truncate, with
// a process that is not killed, and notes their positions.
func (c *crashState) doom(cut func(n uint64) uint64) *doomedStream {
	name := fmt.Sprintf("doomed-%d", c.next())
	n := 1 + c.rng.Intn(5)
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, `{"i":%d}`+"\n", i)
	}
	as, err := parseAcks(mustEvt(c.t, in.String(), "--dir", c.dir, "append", name, "Doomed"), make([]string, n))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, a := range as {
		c.doomedPos[a.position] = true
	}
	d := &doomedStream{name: name, n: uint64(n)}
	d.cut = cut(d.n)
	c.doomed = append(c.doomed, d)
	c.tombstones++
	return d
}

// doomedDone records a delete's or truncate's exit.
func (c *crashState) doomedDone(d *doomedStream, args []string) func(bool, int, string) {
	return func(exited bool, code int, _ string) {
		if !exited {
			return
		}
		if code != 0 {
			c.t.Errorf("evt %s: exit %d", strings.Join(args, " "), code)
			return
		}
		d.acked = true
	}
}

// delete: evt delete of a doomed stream.
func (c *crashState) delete() *victimRun {
	d := c.doom(func(n uint64) uint64 { return n + 1 })
	args := []string{"delete", d.name}
	v := c.command(c.outFile("delete"), nil, args...)
	v.done = c.doomedDone(d, args)
	return v
}

// truncate: evt truncate of a doomed stream before a version in 1..n+1
// (1 removes nothing, n+1 every event).
func (c *crashState) truncate() *victimRun {
	d := c.doom(func(n uint64) uint64 { return 1 + uint64(c.rng.Int63n(int64(n+1))) })
	args := []string{"truncate", d.name, "--before", strconv.FormatUint(d.cut, 10)}
	v := c.command(c.outFile("truncate"), nil, args...)
	v.done = c.doomedDone(d, args)
	return v
}

// importFile: evt import of an export file (named, or on a pipe, which
// evt first copies into the store directory); now and then one sent
// before again, which must add nothing. An import that exited 0 has
// every event of its file stored once; a killed one all or none.
func (c *crashState) importFile() *victimRun {
	var f importFile
	if len(c.importFiles) > 0 && c.rng.Intn(4) == 0 {
		f = c.importFiles[c.rng.Intn(len(c.importFiles))]
	} else {
		n := c.next()
		size := 1 + c.rng.Intn(40)
		if c.rng.Intn(8) == 0 {
			size = 500 + c.rng.Intn(1500)
		}
		var lines strings.Builder
		for i := range size {
			stream := fmt.Sprintf("imp-%d", c.rng.Intn(4))
			id := fmt.Sprintf("i%d-%d", n, i)
			f.keys = append(f.keys, stream+"\x00"+id)
			fmt.Fprintf(&lines, `{"stream":%q,"type":"Imported","id":%q,"time":"2026-01-02T03:04:05Z","data":{"i":%d,"pad":"%s"}}`+"\n",
				stream, id, i, strings.Repeat("y", c.rng.Intn(200)))
		}
		f.path = filepath.Join(c.work, fmt.Sprintf("import-%d.ndjson", n))
		if err := os.WriteFile(f.path, []byte(lines.String()), 0o600); err != nil {
			c.t.Fatal(err)
		}
		c.batches[filepath.Base(f.path)] = f.keys
		c.importFiles = append(c.importFiles, f)
	}
	args := []string{"import", f.path, "-q"}
	var stdin *os.File
	if c.rng.Intn(2) == 0 {
		in, err := os.Open(f.path)
		if err != nil {
			c.t.Fatal(err)
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			c.t.Fatal(err)
		}
		go func() {
			io.Copy(pw, in) // fails with EPIPE if the victim is killed first
			in.Close()
			pw.Close()
		}()
		stdin, args = pr, []string{"import", "-", "-q"}
	}
	v := c.command(c.outFile("import"), stdin, args...)
	v.done = func(exited bool, code int, _ string) {
		if !exited {
			return
		}
		if code != 0 {
			c.t.Errorf("evt %s: exit %d", strings.Join(args, " "), code)
			return
		}
		for _, k := range f.keys {
			c.imported[k] = true
		}
	}
	return v
}

// manualAck: a --manual-ack member (not killed) takes up to 5 events of
// the group "manual" and exits; then the victim, evt ack, acks them.
// When it exited 0 they must never come again; when it was killed they
// may, once their lease ran out. Exit 1 (a lease ran out before the ack,
// on a loaded machine) acks some, which the test cannot tell apart: it
// treats them as unacked.
func (c *crashState) manualAck() *victimRun {
	g := c.groups["manual"]
	out := mustEvt(c.t, "", "--dir", c.dir, "consume", g.name, "--manual-ack", "--once", "--count", strconv.Itoa(1+c.rng.Intn(5)))
	ps := positionsPrinted(out)
	c.delivered(g, ps, false)
	args := []string{"ack", g.name}
	for _, p := range ps {
		args = append(args, strconv.FormatUint(p, 10))
	}
	if len(ps) == 0 {
		args = append(args, "1") // acked long ago: exit 1
	}
	v := c.command(c.outFile("ack"), nil, args...)
	v.done = func(exited bool, code int, _ string) {
		switch {
		case !exited, code == 1:
		case code == 0:
			c.manualAcked = append(c.manualAcked, delivery{g, ps, true})
		default:
			c.t.Errorf("evt %s: exit %d", strings.Join(args, " "), code)
		}
	}
	return v
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
	for _, d := range c.manualAcked {
		for _, p := range d.ps {
			d.g.acked[p] = true
		}
	}
	c.pending, c.manualAcked = nil, nil
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
	evs := parseEvents(t, mustEvt(t, "", "--dir", c.dir, "replay"))
	c.checkDense(evs)
	checkAcked(t, evs, c.acks)
	stored := map[string]event{}
	exists := map[uint64]bool{}
	for _, e := range evs {
		stored[e.Stream+"\x00"+e.ID] = e
		exists[e.Position] = true
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
	for k := range c.imported {
		if _, ok := stored[k]; !ok {
			tally.lost.Add(1)
			t.Errorf("round %d: event %q of an import that exited 0 is lost", c.round, k)
		}
	}
	c.checkDoomed(evs)
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
			if g.delivered[p] == 0 && exists[p] && !parked[p] {
				t.Fatalf("group %s: committed past position %d, which no member was seen to handle", g.name, p)
			}
		}
		g.committed = show.Position
	}
	c.events = evs
}

// checkDense checks what must hold for any store, given the deletes and
// truncates sent: positions increase, and every one missing is a doomed
// stream's event or one of at most c.tombstones tombstones; versions are
// dense from 1 in every stream but the doomed ones; no id twice in a
// stream.
func (c *crashState) checkDense(evs []event) {
	t := c.t
	t.Helper()
	versions := map[string]uint64{}
	ids := map[string]uint64{}
	var last uint64
	unexplained := 0
	for _, e := range evs {
		if e.Position <= last {
			t.Fatalf("position %d after %d: positions must increase", e.Position, last)
		}
		for p := last + 1; p < e.Position; p++ {
			if !c.doomedPos[p] {
				unexplained++
			}
		}
		last = e.Position
		if !strings.HasPrefix(e.Stream, "doomed-") && e.Version != versions[e.Stream]+1 {
			t.Fatalf("position %d: %s@%d, want version %d: versions must be dense", e.Position, e.Stream, e.Version, versions[e.Stream]+1)
		}
		versions[e.Stream] = e.Version
		key := e.Stream + "\x00" + e.ID
		if p, dup := ids[key]; dup {
			t.Fatalf("id %s of %s at positions %d and %d", e.ID, e.Stream, p, e.Position)
		}
		ids[key] = e.Position
	}
	if unexplained > c.tombstones {
		t.Fatalf("round %d: %d positions missing that no doomed stream held, with only %d deletes and truncates sent", c.round, unexplained, c.tombstones)
	}
}

// checkDoomed checks each doomed stream: whole, or cut where its command
// said (cut if it exited 0), and not whole again once seen cut.
func (c *crashState) checkDoomed(evs []event) {
	t := c.t
	held := map[string][]uint64{}
	for _, e := range evs {
		if strings.HasPrefix(e.Stream, "doomed-") {
			held[e.Stream] = append(held[e.Stream], e.Version)
		}
	}
	for _, d := range c.doomed {
		vs := held[d.name]
		from := uint64(0) // the first version held, if they are dense to n
		if len(vs) > 0 && vs[len(vs)-1] == d.n && uint64(len(vs)) == d.n-vs[0]+1 {
			from = vs[0]
		}
		var state string
		switch {
		case from == 1:
			state = "whole"
		case len(vs) == 0 && d.cut == d.n+1, from == d.cut:
			state = "cut"
		default:
			tally.lost.Add(1)
			t.Fatalf("round %d: %s holds versions %v of 1..%d; want all, or %d..%d", c.round, d.name, vs, d.n, d.cut, d.n)
		}
		if d.cut == 1 {
			state = "cut" // truncate --before 1 removes nothing
		}
		if d.acked && state != "cut" {
			tally.lost.Add(1)
			t.Fatalf("round %d: %s holds versions %v after its %d..%d cut exited 0", c.round, d.name, vs, d.cut, d.n)
		}
		// Whole may turn cut once: a killed command whose record reached
		// the segment but not the commit file is adopted by the next
		// writer's recovery, as a killed append's is. A cut never undoes.
		if d.settled == "cut" && state == "whole" {
			tally.lost.Add(1)
			t.Fatalf("round %d: %s was cut at the last check and is whole again", c.round, d.name)
		}
		d.settled = state
	}
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
	time.Sleep(manualAckWait) // the leases killed acks left end
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
		for _, e := range c.events {
			if p := e.Position; g.delivered[p] == 0 && !parked[p] {
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
			groups: map[string]*groupTrack{}, kills: map[string]int{},
			doomedPos: map[uint64]bool{}, imported: map[string]bool{}}
		mustEvt(t, "", "--dir", c.dir, "append", "counter-1", "Counted", `{"read":0}`, "--id", "e0")
		c.counter = 1
		for _, name := range []string{"printed", "executed", "manual"} {
			args := []string{"--dir", c.dir, "group", "create", name, "--from", "start"}
			if name == "manual" {
				args = append(args, "--ack-wait", manualAckWait.String())
			}
			mustEvt(t, "", args...)
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
