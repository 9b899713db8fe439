package cmd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

// Real-process tests of the promises of consumer groups that issue 14
// found broken: each event goes to one member at a time, in order, and
// nothing is lost. Members are `evt consume` processes (the test binary
// run as evt); handlers record what they did in a shared log (see
// timedHandler).

// promiseGuard bounds every wait of these tests for something that must
// happen: a broken promise would otherwise keep them waiting forever.
const promiseGuard = 60 * time.Second

// timedHandler returns an --exec command that appends
// "MEMBER POSITION start NANOS" to the file GT_LOG, runs body, and
// appends "MEMBER POSITION done NANOS". Each line is one write(2) to a
// file opened with O_APPEND, so lines of all members never interleave.
func timedHandler(body string) string {
	return `echo "$GT_MEMBER $EVT_POSITION start $(date +%s%N)" >> "$GT_LOG"
` + body + `
echo "$GT_MEMBER $EVT_POSITION done $(date +%s%N)" >> "$GT_LOG"`
}

// timedRun is one run of a handler on one event, from a timedHandler log.
type timedRun struct {
	member     string
	position   uint64
	start, end int64 // unix nanoseconds; end 0: never done (killed)
}

// parseTimedLog reads a timedHandler log.
func parseTimedLog(t *testing.T, path string) []timedRun {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var runs []timedRun
	open := map[string]int{} // member → index in runs of its running handler
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var member, what string
		var pos uint64
		var at int64
		if _, err := fmt.Sscanf(sc.Text(), "%s %d %s %d", &member, &pos, &what, &at); err != nil {
			t.Fatalf("handler log: %q: %v", sc.Text(), err)
		}
		switch what {
		case "start":
			open[member] = len(runs)
			runs = append(runs, timedRun{member: member, position: pos, start: at})
		case "done":
			i, ok := open[member]
			if !ok || runs[i].position != pos {
				t.Fatalf("handler log: %q: done without its start", sc.Text())
			}
			runs[i].end = at
			delete(open, member)
		}
	}
	return runs
}

// checkOneAtATime fails the test if two runs of one event overlap in
// time. A run that never finished counts as running for ever.
func checkOneAtATime(t *testing.T, runs []timedRun) {
	t.Helper()
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if a.position != b.position {
				continue
			}
			aEnd, bEnd := a.end, b.end
			if aEnd == 0 {
				aEnd = 1<<63 - 1
			}
			if bEnd == 0 {
				bEnd = 1<<63 - 1
			}
			if a.start < bEnd && b.start < aEnd {
				t.Errorf("position %d ran on %s (%d–%d) and on %s (%d–%d) at once", a.position, a.member, a.start, a.end, b.member, b.start, b.end)
			}
		}
	}
}

// startMember starts `evt --dir DIR consume args...` as member name,
// with GT_MEMBER and GT_LOG set for its handlers.
func startMember(t *testing.T, dir, logFile, name string, args ...string) *groupMember {
	t.Helper()
	c := selfCommand(t, "evt", append([]string{"--dir", dir, "consume"}, args...)...)
	c.Env = append(c.Env, "GT_MEMBER="+name, "GT_LOG="+logFile,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	errFile, err := os.Create(filepath.Join(t.TempDir(), name+".stderr"))
	if err != nil {
		t.Fatal(err)
	}
	c.Stderr = errFile
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	m := &groupMember{name: name, cmd: c, stderr: errFile, waited: make(chan error, 1)}
	go func() { m.waited <- c.Wait() }()
	t.Cleanup(func() {
		c.Process.Kill()
		<-m.waited
		errFile.Close()
	})
	return m
}

// waitFor polls cond until it holds, failing the test after promiseGuard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(promiseGuard); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v for %s", promiseGuard, what)
		}
	}
}

// groupCommitted is the committed position of group name in dir.
func groupCommitted(t *testing.T, dir, name string) uint64 {
	t.Helper()
	s, err := local.Open(dir, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.GroupState(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Committed
}

// TestGroupBatchLeaseExpires: a member takes 3 events in one batch
// (--batch 3) and runs their handlers one by one, each taking most of the
// ack wait, so the third event's lease runs out before its turn; a second
// member takes it. The first member must not run it as well: no event
// runs on two members at once, and every event is handled.
func TestGroupBatchLeaseExpires(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	for i := 1; i <= 3; i++ {
		evtOutput(t, "--dir", dir, "append", "s-"+strconv.Itoa(i), "T", "{}")
	}
	evtOutput(t, "--dir", dir, "group", "create", "G", "--from", "start", "--ack-wait", "3s")
	logFile := filepath.Join(t.TempDir(), "handled.log")

	slow := startMember(t, dir, logFile, "slow", "G", "--batch", "3", "--exec", timedHandler("sleep 2"))
	waitFor(t, "the slow member's first handler", func() bool {
		b, _ := os.ReadFile(logFile)
		return len(b) > 0
	})
	fast := startMember(t, dir, logFile, "fast", "G", "--exec", timedHandler(":"))
	waitFor(t, "the group to handle all 3 events", func() bool {
		for _, m := range []*groupMember{slow, fast} {
			if done, err := m.exited(); done {
				t.Fatalf("member %s exited (%v): %s", m.name, err, m.stderrText())
			}
		}
		return groupCommitted(t, dir, "G") == 4
	})
	// Let the slow member finish what it may still run.
	slow.cmd.Process.Signal(os.Interrupt)
	<-slow.waited
	slow.waited <- nil

	runs := parseTimedLog(t, logFile)
	checkOneAtATime(t, runs)
	t.Logf("runs: %+v", runs)
}

// pidGone reports whether process pid no longer runs (gone, or a zombie
// nobody reaped yet).
func pidGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) STATE ...
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

// TestGroupHandlerTreeKilled: a handler that starts a background process
// (sleep, its pid written to a file) and waits for it is killed with all
// it started: when it outlives --ack-wait, when its member is killed
// with SIGKILL, and when its member is interrupted.
func TestGroupHandlerTreeKilled(t *testing.T) {
	for _, how := range []string{"ack-wait", "sigkill", "sigint"} {
		t.Run(how, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			evtOutput(t, "--dir", dir, "append", "s-1", "T", "{}")
			ackWait := "1h"
			if how == "ack-wait" {
				ackWait = "1s"
			}
			evtOutput(t, "--dir", dir, "group", "create", "G", "--from", "start", "--ack-wait", ackWait, "--max-deliver", "1")
			pidFile := filepath.Join(t.TempDir(), "pid")
			m := startMember(t, dir, filepath.Join(t.TempDir(), "log"), "m", "G",
				"--exec", `sleep 300 & echo $! > `+pidFile+`.tmp; mv `+pidFile+`.tmp `+pidFile+`; wait`)
			var pid int
			waitFor(t, "the handler's background process", func() bool {
				b, err := os.ReadFile(pidFile)
				if err == nil {
					pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
				}
				return err == nil
			})
			switch how {
			case "ack-wait":
				waitFor(t, "the event to be parked", func() bool {
					return groupCommitted(t, dir, "G") == 2
				})
				if out := evtOutput(t, "--dir", dir, "group", "parked", "G", "-o", "json", "--jq", ".reason"); !strings.Contains(out, "killed after the ack wait") {
					t.Errorf("parked reason %q, want killed after the ack wait", out)
				}
			case "sigkill":
				m.cmd.Process.Signal(syscall.SIGKILL)
			case "sigint":
				m.cmd.Process.Signal(os.Interrupt)
			}
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			waitFor(t, fmt.Sprintf("the handler's background process %d to end", pid), func() bool { return pidGone(pid) })
		})
	}
}

// TestGroupLateAck: a --manual-ack consumer takes an event and exits; its
// lease runs out and an --exec member takes the event and runs it. The
// late `evt ack` of the first consumer must leave the running member's
// lease alone (exit 1): the event stays pending until its handler is done,
// so the stream's next event does not overtake it.
func TestGroupLateAck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	evtOutput(t, "--dir", dir, "append", "s-1", "T", "{}")
	evtOutput(t, "--dir", dir, "append", "s-1", "T", "{}")
	evtOutput(t, "--dir", dir, "group", "create", "G", "--from", "start", "--ack-wait", "1s")
	if out := evtOutput(t, "--dir", dir, "consume", "G", "--manual-ack", "--once", "--jq", ".position"); out != "1\n" {
		t.Fatalf("consume --manual-ack: %q, want position 1", out)
	}
	logFile := filepath.Join(t.TempDir(), "handled.log")
	release := filepath.Join(t.TempDir(), "release")
	// The handler runs until the test creates the release file.
	startMember(t, dir, logFile, "exec", "G", "--exec",
		timedHandler(`until test -e `+release+`; do sleep 0.05; done`))
	waitFor(t, "the exec member to run position 1", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.HasPrefix(string(b), "exec 1 start")
	})
	c := selfCommand(t, "evt", "--dir", dir, "ack", "G", "1")
	out, err := c.CombinedOutput()
	if err == nil {
		t.Errorf("evt ack of a position another member runs: exit 0, want 1 (%s)", out)
	}
	if got := groupCommitted(t, dir, "G"); got != 1 {
		t.Errorf("committed %d after the late ack, want 1: position 1 still runs", got)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both events handled", func() bool { return groupCommitted(t, dir, "G") == 3 })
	runs := parseTimedLog(t, logFile)
	if len(runs) != 2 || runs[0].position != 1 || runs[1].position != 2 || runs[1].start < runs[0].end {
		t.Errorf("runs %+v: want position 1, then 2 after it", runs)
	}
}

// TestGroupResetDuringHandler: `evt group reset` back over an event whose
// handler runs, 20 times, with two members. The reset asks for the event
// again: it is handled once more after its running handler is done (the
// old handler's ack does not ack the queued-again event), and never on
// both members at once.
func TestGroupResetDuringHandler(t *testing.T) {
	const rounds = 20
	dir := filepath.Join(t.TempDir(), "store")
	evtOutput(t, "--dir", dir, "group", "create", "G", "--from", "start", "--ack-wait", "1m")
	logFile := filepath.Join(t.TempDir(), "handled.log")
	// Each handler waits for the file LOG.POSITION.
	handler := timedHandler(`until test -e "$GT_LOG.$EVT_POSITION"; do sleep 0.02; done`)
	members := []*groupMember{
		startMember(t, dir, logFile, "a", "G", "--exec", handler),
		startMember(t, dir, logFile, "b", "G", "--exec", handler),
	}
	doneRuns := func(p uint64) (n int) {
		b, _ := os.ReadFile(logFile)
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 4 && f[1] == strconv.FormatUint(p, 10) && f[2] == "done" {
				n++
			}
		}
		return n
	}
	for p := uint64(1); p <= rounds; p++ {
		evtOutput(t, "--dir", dir, "append", "s-"+strconv.FormatUint(p, 10), "T", "{}")
		waitFor(t, fmt.Sprintf("a handler of position %d", p), func() bool {
			b, _ := os.ReadFile(logFile)
			return strings.Contains(string(b), fmt.Sprintf(" %d start ", p))
		})
		evtOutput(t, "--dir", dir, "group", "reset", "G", "--to", strconv.FormatUint(p, 10))
		if err := os.WriteFile(logFile+"."+strconv.FormatUint(p, 10), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("position %d handled again after the reset", p), func() bool {
			for _, m := range members {
				if done, err := m.exited(); done {
					t.Fatalf("member %s exited (%v): %s", m.name, err, m.stderrText())
				}
			}
			return doneRuns(p) >= 2 && groupCommitted(t, dir, "G") == p+1
		})
	}
	runs := parseTimedLog(t, logFile)
	checkOneAtATime(t, runs)
	for p := uint64(1); p <= rounds; p++ {
		if n := doneRuns(p); n != 2 {
			t.Errorf("position %d handled %d times, want 2 (once, and once after the reset)", p, n)
		}
	}
}

// TestGroupHeadOfLine: 70 events of one stream at the head of the log,
// its first one's handler held up, then 98 events of 49 other streams.
// With --ordering stream the busy stream waits, but the group reads past
// it: 5 members handle all 98 other events while the busy stream's first
// event still runs, and then the busy stream, in order.
func TestGroupHeadOfLine(t *testing.T) {
	const hot, others, streams = 70, 98, 49
	dir := filepath.Join(t.TempDir(), "store")
	s, err := local.Open(dir, local.Options{Create: true, Sync: local.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	var b log.Batch
	for i := 0; i < hot; i++ {
		b.Add("hot", "T", "", []byte(`{}`), nil)
	}
	for i := 0; i < others; i++ {
		b.Add(fmt.Sprintf("s-%02d", i%streams), "T", "", []byte(`{}`), nil)
	}
	if _, err := s.Append(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	s.Close()
	evtOutput(t, "--dir", dir, "group", "create", "G", "--from", "start", "--ack-wait", "1m")
	logFile := filepath.Join(t.TempDir(), "handled.log")
	release := logFile + ".release"
	handler := timedHandler(`case $EVT_STREAM in hot) until test -e "` + release + `"; do sleep 0.02; done ;; esac`)
	var members []*groupMember
	for i := range 5 {
		members = append(members, startMember(t, dir, logFile, fmt.Sprintf("m%d", i+1), "G", "--exec", handler))
	}
	doneCount := func(from, to uint64) (n int) {
		if _, err := os.Stat(logFile); err != nil {
			return 0 // no handler ran yet
		}
		for _, r := range parseTimedLog(t, logFile) {
			if r.end != 0 && r.position >= from && r.position <= to {
				n++
			}
		}
		return n
	}
	waitFor(t, "the other streams' events, while the busy stream waits", func() bool {
		for _, m := range members {
			if done, err := m.exited(); done {
				t.Fatalf("member %s exited (%v): %s", m.name, err, m.stderrText())
			}
		}
		return doneCount(hot+1, hot+others) == others
	})
	if n := doneCount(1, hot); n != 0 {
		t.Errorf("%d events of the busy stream done before its first one was released", n)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event handled", func() bool { return groupCommitted(t, dir, "G") == hot+others+1 })
	runs := parseTimedLog(t, logFile)
	checkOneAtATime(t, runs)
	// The busy stream in order: each starts after the one before is done.
	var last timedRun
	for _, r := range runs {
		if r.position > hot {
			continue
		}
		if last.position != 0 && (r.position != last.position+1 || r.start < last.end) {
			t.Errorf("busy stream: position %d ran after %d (%d–%d), want %d after it was done", r.position, last.position, last.start, last.end, last.position+1)
		}
		last = r
	}
}
