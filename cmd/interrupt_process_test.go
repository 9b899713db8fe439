package cmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Interrupts with real processes (issue 15): CLI.md's "an interrupt never
// lies about a write". A process that SIGINT or SIGTERM stopped (exit 130,
// or killed by the signal, which a shell reports as 130) committed nothing
// of its batch; one that exits 0 committed all of it and said so; the
// store verifies after each. Appends have no signal watcher (the signal's
// default action ends them before their commit point), import, compact
// and verify stop through their context.

// interruptLines is the size of the batches interrupted here.
const interruptLines = 300_000

// interruptStatus says how a child stopped: "interrupted" (exit 130, or
// killed by SIGINT or SIGTERM), "ok" (exit 0) or what else happened.
func interruptStatus(err error) string {
	if err == nil {
		return "ok"
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err.Error()
	}
	ws := ee.Sys().(syscall.WaitStatus)
	switch {
	case ws.Exited() && ws.ExitStatus() == exitInterrupted:
		return "interrupted"
	case ws.Signaled() && (ws.Signal() == syscall.SIGINT || ws.Signal() == syscall.SIGTERM):
		return "interrupted"
	}
	return err.Error()
}

// streamVersions is every stream's version, as evt streams prints it.
func streamVersions(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	out, err := evtRun(t, "--dir", dir, "streams", "-o", "json")
	if err != nil && !strings.Contains(err.Error(), "exit status 4") {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var s struct {
			Stream  string `json:"stream"`
			Version uint64 `json:"version"`
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("evt streams: %q: %v", line, err)
		}
		got[s.Stream] = s.Version
	}
	return got
}

func mustVerify(t *testing.T, dir, when string) {
	t.Helper()
	if out, err := evtRun(t, "--dir", dir, "verify"); err != nil || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("%s: evt verify: %q %v", when, out, err)
	}
}

// writeNumberedLines writes n NDJSON lines made by line(i) to a file in dir.
func writeNumberedLines(t *testing.T, dir, name string, n int, line func(i int) string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		w.WriteString(line(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// numberedStore is a new store (dir, in root) whose stream s holds n
// events of dataLine.
func numberedStore(t *testing.T, n int) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	dir = filepath.Join(root, "store")
	data := writeNumberedLines(t, root, "data.ndjson", n, dataLine)
	c, errOut := startInterruptible(t, data, "--dir", dir, "append", "s", "T", "-q", "--sync", "none")
	if err := c.Wait(); err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	return root, dir
}

func dataLine(i int) string { return fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 48)) }

// startInterruptible starts evt with stdin from the file at in ("" for
// none) and returns it with its stderr.
func startInterruptible(t *testing.T, in string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	c := quickExit(selfCommand(t, "evt", args...))
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		c.Stdin = f
	}
	var errOut bytes.Buffer
	c.Stderr = &errOut
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c, &errOut
}

// waitExit waits for c, failing the test if it runs on for a minute: a
// signal it ignores would leave it running (or blocked on a lock) that
// long.
func waitExit(t *testing.T, c *exec.Cmd, what string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		c.Process.Kill()
		<-done
		t.Fatalf("%s: still running a minute after the signal", what)
		return nil
	}
}

// TestInterruptAppend interrupts a 300k-line `evt append STREAM TYPE <
// file` at moments spread over its run, and once after it has begun to
// print its results (past its commit point by construction): interrupted
// ⇔ the stream did not change, exit 0 ⇔ every line is in it.
func TestInterruptAppend(t *testing.T) {
	rounds := 8
	if testing.Short() {
		rounds = 4
	}
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	in := writeNumberedLines(t, root, "data.ndjson", interruptLines, dataLine)
	evtMust(t, "--dir", dir, "append", "other", "T", "{}")

	// How long one append takes here, to spread the signals over it.
	start := time.Now()
	c, errOut := startInterruptible(t, in, "--dir", dir, "append", "big", "T", "-q")
	if err := c.Wait(); err != nil {
		t.Fatalf("evt append: %v: %s", err, errOut)
	}
	took := time.Since(start)
	want := streamVersions(t, dir)
	if want["big"] != interruptLines {
		t.Fatalf("stream big at %d after one append, want %d", want["big"], interruptLines)
	}
	outcomes := map[string]int{}
	for i := range rounds {
		delay := took * time.Duration(i) / time.Duration(rounds-2) // the last rounds come after the end
		c, errOut := startInterruptible(t, in, "--dir", dir, "append", "big", "T", "-q")
		time.Sleep(delay)
		sig := os.Interrupt
		if i%3 == 2 {
			sig = syscall.SIGTERM
		}
		c.Process.Signal(sig)
		got := interruptStatus(waitExit(t, c, "evt append"))
		outcomes[got]++
		switch got {
		case "interrupted":
		case "ok":
			want["big"] += interruptLines
		default:
			t.Fatalf("round %d (%v after %v): %s: %s", i, sig, delay, got, errOut)
		}
		if v := streamVersions(t, dir); v["big"] != want["big"] || v["other"] != 1 {
			t.Fatalf("round %d (%v after %v): %s, and stream big is at version %d, want %d", i, sig, delay, got, v["big"], want["big"])
		}
	}
	mustVerify(t, dir, fmt.Sprintf("after %d rounds", rounds))
	t.Logf("%d rounds over %v: %v", rounds, took, outcomes)

	// Past the commit point: the results are printed after it.
	c = quickExit(selfCommand(t, "evt", "--dir", dir, "append", "big", "T"))
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c.Stdin = f
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	first, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no result line: %v", err)
	}
	c.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(r)
	if got := interruptStatus(waitExit(t, c, "evt append")); got != "ok" {
		t.Fatalf("SIGINT while printing the results: %s, want exit 0", got)
	}
	if n := 1 + bytes.Count(rest, []byte("\n")); n != interruptLines {
		t.Errorf("SIGINT while printing the results: %d result lines (first %q), want %d", n, first, interruptLines)
	}
	want["big"] += interruptLines
	if v := streamVersions(t, dir); v["big"] != want["big"] {
		t.Errorf("after the append interrupted while printing: big at %d, want %d", v["big"], want["big"])
	}
	mustVerify(t, dir, "at the end")
}

// holdLock takes dir's append lock (DIR/lock, an flock) in this process,
// as another evt writer would, until release is called.
func holdLock(t *testing.T, dir string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
}

// TestInterruptLockWait interrupts writers that wait for the append lock
// another process holds: each must stop while the lock is still held
// (else it would wait out --lock-timeout, a minute here), exit
// interrupted and write nothing, also after the lock is let go: append,
// import, delete, truncate and repair.
func TestInterruptLockWait(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	evtMust(t, "--dir", dir, "append", "s", "T", "{}")
	lines := writeNumberedLines(t, root, "data.ndjson", 1000, dataLine)
	export := filepath.Join(root, "export.ndjson")
	other := filepath.Join(root, "other")
	evtMust(t, "--dir", other, "append", "imported", "T", "-q", "--sync", "none")
	if err := os.WriteFile(export, []byte(evtMust(t, "--dir", other, "export")), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   string
		args []string
		sig  os.Signal
	}{
		{"append one event", "", []string{"append", "s", "T", "{}"}, os.Interrupt},
		{"append one event, SIGTERM", "", []string{"append", "s", "T", "{}"}, syscall.SIGTERM},
		{"append from a file", lines, []string{"append", "s", "T"}, os.Interrupt},
		{"import", export, []string{"import"}, os.Interrupt},
		{"delete", "", []string{"delete", "s"}, os.Interrupt},
		{"truncate", "", []string{"truncate", "s", "--before", "2"}, os.Interrupt},
		{"truncate, SIGTERM", "", []string{"truncate", "s", "--before", "2"}, syscall.SIGTERM},
		{"repair", "", []string{"repair"}, os.Interrupt},
	}
	for _, tc := range cases {
		release := holdLock(t, dir)
		c, errOut := startInterruptible(t, tc.in, append([]string{"--dir", dir, "--lock-timeout", "1m"}, tc.args...)...)
		time.Sleep(300 * time.Millisecond) // most likely waiting for the lock by now; earlier is as good
		c.Process.Signal(tc.sig)
		got := interruptStatus(waitExit(t, c, tc.name))
		release()
		if got != "interrupted" {
			t.Errorf("%s: %s, want interrupted: %s", tc.name, got, errOut)
		}
		if errOut.Len() != 0 {
			t.Errorf("%s: stderr %q, want nothing", tc.name, errOut)
		}
		if v := streamVersions(t, dir); v["s"] != 1 || len(v) != 1 {
			t.Errorf("%s: streams %v after the interrupt, want s at version 1 only", tc.name, v)
		}
	}
	mustVerify(t, dir, "at the end")
}

// TestInterruptImport interrupts `evt import` of a 300k-event export, read
// from a file and from a pipe, at moments spread over its run:
// interrupted ⇔ nothing imported, exit 0 ⇔ everything, and the store
// verifies.
func TestInterruptImport(t *testing.T) {
	rounds := 6
	if testing.Short() {
		rounds = 3
	}
	root := t.TempDir()
	src := filepath.Join(root, "src")
	data := writeNumberedLines(t, root, "data.ndjson", interruptLines, dataLine)
	c, _ := startInterruptible(t, data, "--dir", src, "append", "big", "T", "-q", "--sync", "none")
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(root, "export.ndjson")
	ef, err := os.Create(export)
	if err != nil {
		t.Fatal(err)
	}
	ec := quickExit(selfCommand(t, "evt", "--dir", src, "export"))
	ec.Stdout = ef
	if err := ec.Run(); err != nil {
		t.Fatal(err)
	}
	ef.Close()

	dir := filepath.Join(root, "store")
	start := time.Now()
	evtMust(t, "--dir", dir, "import", export, "-q")
	took := time.Since(start)
	outcomes := map[string]int{}
	for i := range rounds {
		dir := filepath.Join(root, fmt.Sprintf("store%d", i))
		evtMust(t, "--dir", dir, "append", "other", "T", "{}")
		args := []string{"--dir", dir, "import", "-q"}
		var c *exec.Cmd
		var errOut *bytes.Buffer
		if i%2 == 0 {
			c, errOut = startInterruptible(t, "", append(args, export)...)
		} else { // from a pipe: spooled to a file first
			c = quickExit(selfCommand(t, "evt", args...))
			errOut = &bytes.Buffer{}
			c.Stderr = errOut
			w, err := c.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			go func() {
				f, err := os.Open(export)
				if err == nil {
					io.Copy(w, f)
					f.Close()
				}
				w.Close()
			}()
		}
		delay := took * time.Duration(i) / time.Duration(rounds-2) // the last rounds come after the end
		time.Sleep(delay)
		c.Process.Signal(os.Interrupt)
		signalled := time.Now()
		got := interruptStatus(waitExit(t, c, "evt import"))
		stopped := time.Since(signalled)
		outcomes[got]++
		v := streamVersions(t, dir)
		switch got {
		case "interrupted":
			if v["big"] != 0 {
				t.Errorf("round %d: interrupted after %v, and stream big holds %d events, want none", i, delay, v["big"])
			}
			t.Logf("round %d: interrupted %v after the start, stopped %v after the signal", i, delay, stopped)
		case "ok":
			if v["big"] != interruptLines {
				t.Errorf("round %d: exit 0, and stream big holds %d events, want %d", i, v["big"], interruptLines)
			}
		default:
			t.Fatalf("round %d (after %v): %s: %s", i, delay, got, errOut)
		}
		if v["other"] != 1 {
			t.Errorf("round %d: stream other at %d, want 1", i, v["other"])
		}
		mustVerify(t, dir, fmt.Sprintf("round %d", i))
	}
	t.Logf("%d rounds over %v: %v", rounds, took, outcomes)
}

// TestInterruptCompactVerify interrupts `evt compact` and `evt verify` at
// moments spread over their run: each stops (exit 130, or 0 if it had
// finished), the store verifies and reads as before, and a compaction
// run after finishes the work.
func TestInterruptCompactVerify(t *testing.T) {
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	data := writeNumberedLines(t, root, "data.ndjson", 30_000, dataLine)
	seg := []string{"--dir", dir, "--segment-size", "1000000", "--sync", "none"}
	for i := range 8 {
		c, _ := startInterruptible(t, data, append(seg, "append", fmt.Sprintf("s-%d", i), "T", "-q")...)
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
		evtMust(t, append(seg, "append", "keep", "T", fmt.Sprintf(`{"i":%d}`, i))...)
		if i%2 == 0 {
			evtMust(t, append(seg, "delete", fmt.Sprintf("s-%d", i))...)
		} else {
			evtMust(t, append(seg, "truncate", fmt.Sprintf("s-%d", i), "--before", "29000")...)
		}
	}
	wantReplay := evtMust(t, "--dir", dir, "replay", "-o", "json")

	for _, what := range []string{"verify", "compact"} {
		work := filepath.Join(root, what)
		copyDir(t, dir, work)
		start := time.Now()
		evtMust(t, "--dir", work, what)
		took := time.Since(start)
		outcomes := map[string]int{}
		for i := range rounds {
			work := filepath.Join(root, fmt.Sprintf("%s%d", what, i))
			copyDir(t, dir, work)
			c, errOut := startInterruptible(t, "", "--dir", work, what)
			delay := took * time.Duration(i) / time.Duration(rounds)
			time.Sleep(delay)
			c.Process.Signal(os.Interrupt)
			signalled := time.Now()
			got := interruptStatus(waitExit(t, c, "evt "+what))
			stopped := time.Since(signalled)
			outcomes[got]++
			if got != "interrupted" && got != "ok" {
				t.Fatalf("evt %s, round %d (after %v): %s: %s", what, i, delay, got, errOut)
			}
			if got == "interrupted" && errOut.Len() != 0 {
				t.Errorf("evt %s, round %d: stderr %q, want nothing", what, i, errOut)
			}
			t.Logf("evt %s, round %d: %s %v after the start, exited %v after the signal", what, i, got, delay, stopped)
			mustVerify(t, work, fmt.Sprintf("%s round %d", what, i))
			if got := evtMust(t, "--dir", work, "replay", "-o", "json"); got != wantReplay {
				t.Fatalf("evt %s, round %d: replay differs: %s", what, i, firstDiff(got, wantReplay))
			}
			if what == "compact" {
				evtMust(t, "--dir", work, "compact")
				if got, want := segmentFiles(t, work), segmentFiles(t, filepath.Join(root, what)); !sameFiles(got, want) {
					t.Errorf("evt compact, round %d, then a whole compaction: files %v, want %v as after one whole compaction", i, got, want)
				}
			}
		}
		t.Logf("evt %s: %d rounds over %v: %v", what, rounds, took, outcomes)
	}
}

// TestCursorFileKill kills `evt tail --cursor-file` (SIGKILL) while it
// prints a backlog: the file then holds a position, never one past what
// was printed, and the next run prints every event after it, so the two
// runs together miss none.
func TestCursorFileKill(t *testing.T) {
	const n = 50_000
	root, dir := numberedStore(t, n)
	pos := filepath.Join(root, "seen.pos")
	for round := range 3 {
		tc := quickExit(selfCommand(t, "evt", "--dir", dir, "tail", "--cursor-file", pos, "--jq", ".position"))
		out, err := tc.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(out)
		var last uint64
		for range 1000 * (round + 1) {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			fmt.Sscan(line, &last)
		}
		tc.Process.Kill()
		rest, _ := io.ReadAll(r)
		for _, line := range strings.Fields(string(rest)) {
			fmt.Sscan(line, &last)
		}
		tc.Wait()
		b, err := os.ReadFile(pos)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var saved uint64
		if len(b) > 0 {
			if _, err := fmt.Sscan(string(b), &saved); err != nil {
				t.Fatalf("round %d: cursor file %q: %v", round, b, err)
			}
		}
		if saved > last {
			t.Fatalf("round %d: cursor file says %d, the last position printed was %d", round, saved, last)
		}
		t.Logf("round %d: killed after printing position %d, saved %d", round, last, saved)
	}
	// The rest, from the saved position on, ends at the log's end.
	b, _ := os.ReadFile(pos)
	var saved uint64
	fmt.Sscan(string(b), &saved)
	rest := evtMust(t, "--dir", dir, "tail", "--cursor-file", pos, "--jq", ".position")
	lines := strings.Fields(rest)
	if saved < n && (len(lines) == 0 || lines[0] != fmt.Sprint(saved+1) || lines[len(lines)-1] != fmt.Sprint(n)) {
		t.Fatalf("after the kills (saved %d): the next run printed %d positions, want %d..%d", saved, len(lines), saved+1, n)
	}
	if b, _ := os.ReadFile(pos); strings.TrimSpace(string(b)) != fmt.Sprint(n) {
		t.Fatalf("cursor file %q at the end, want %d", b, n)
	}
}

// TestInterruptConsume interrupts `evt consume` (SIGINT, SIGTERM) while it
// is blocked writing a batch to a full stdout pipe: once the pipe is
// drained, its output ends at a line boundary and every line is a whole
// event; it exits 130 (or 0); and the next consume prints exactly the
// events the first did not (what it printed was acked on its way out).
// (SIGKILLed there, it leaves the pipe's 64 KiB ending mid-line: a kill
// can cut output anywhere, and TestSoak allows a killed member's last
// line to be partial.)
func TestInterruptConsume(t *testing.T) {
	const n = 5000
	_, dir := numberedStore(t, n)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		group := fmt.Sprintf("g-%d", sig.(syscall.Signal))
		evtMust(t, "--dir", dir, "group", "create", group, "s", "--from", "start")
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		c := quickExit(selfCommand(t, "evt", "--dir", dir, "consume", group))
		c.Stdout = w
		var errOut bytes.Buffer
		c.Stderr = &errOut
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		// Blocked: the pipe holds all it can and evt has more to write.
		full := func() bool {
			queued, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
			return err == nil && queued >= 64<<10
		}
		for end := time.Now().Add(30 * time.Second); !full(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%v: the stdout pipe never filled: %s", sig, errOut.String())
			}
		}
		time.Sleep(50 * time.Millisecond)
		c.Process.Signal(sig)
		time.Sleep(50 * time.Millisecond)
		out, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := interruptStatus(waitExit(t, c, "evt consume")); got != "interrupted" && got != "ok" {
			t.Fatalf("%v: evt consume: %s: %s", sig, got, errOut.String())
		}
		if len(out) == 0 || out[len(out)-1] != '\n' {
			t.Fatalf("%v: the output of %d bytes ends in a partial line: %q", sig, len(out), out[max(0, len(out)-80):])
		}
		seen := map[uint64]bool{}
		for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			var e struct{ Position uint64 }
			if err := json.Unmarshal([]byte(l), &e); err != nil || e.Position == 0 {
				t.Fatalf("%v: printed %q", sig, l)
			}
			seen[e.Position] = true
		}
		rest := evtMust(t, "--dir", dir, "consume", group, "--once")
		again := 0
		for _, l := range strings.Split(strings.TrimSuffix(rest, "\n"), "\n") {
			var e struct{ Position uint64 }
			if l == "" || json.Unmarshal([]byte(l), &e) != nil {
				continue
			}
			if seen[e.Position] {
				again++
			}
			seen[e.Position] = true
		}
		if len(seen) != n || again != 0 {
			t.Errorf("%v: the two consumes printed %d of %d events, %d twice", sig, len(seen), n, again)
		}
		t.Logf("%v: the interrupted consume printed %d bytes", sig, len(out))
	}
}
