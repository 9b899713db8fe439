// Package torture_test attacks the finished evt binary: crashes at random
// instants, power loss, I/O errors, load, hostile input and a few security
// basics (issue 7). Every test drives the real binary, built once by
// TestMain, as separate processes; the power-loss test also opens store
// images with the log package to check them quickly.
//
// A short version runs in `go test ./...`. The full version, with the
// figures that testdata/README.md quotes, runs with
//
//	EVT_TORTURE=full go test ./cmd/torture -run . -v -timeout 60m
//
// and EVT_TORTURE_REPORT=FILE writes the results table to FILE as well.
package torture_test

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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// evtBin is the evt binary TestMain built for this run.
var evtBin string

// full says whether this is the full run (EVT_TORTURE=full).
var full = os.Getenv("EVT_TORTURE") == "full"

// scale picks the short or the full figure.
func scale(short, long int) int {
	if full {
		return long
	}
	return short
}

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "evt-torture-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	evtBin = filepath.Join(tmp, "evt")
	// The binary users run, built from this module as the README builds
	// it: static (CGO_ENABLED=0), as evt is shipped.
	build := exec.Command("go", "build", "-o", evtBin, "github.com/evtdev/evt")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "torture: go build:", err)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	report := tally.table()
	fmt.Print(report)
	if p := os.Getenv("EVT_TORTURE_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// results counts what the suite did, for the table in testdata/README.md. Every
// test adds to it as it goes; lost stays 0 or a test failed.
type results struct {
	crashes   atomic.Int64 // processes killed with SIGKILL, each followed by the checks
	images    atomic.Int64 // power-loss images of a store checked
	faults    atomic.Int64 // I/O faults injected (ENOSPC, EIO, failed fsync, read-only)
	inputs    atomic.Int64 // hostile inputs tried
	fuzzSecs  atomic.Int64 // seconds of go test -fuzz
	acked     atomic.Int64 // acknowledged events checked present after a crash, fault or image
	lost      atomic.Int64 // acknowledged events missing or doubled (a failing test)
	loadEvts  atomic.Int64 // events appended by the load test
	loadMilli atomic.Int64 // its duration
	redeliver atomic.Int64 // group deliveries of events not yet acked (allowed: at least once)
}

var tally results

func (r *results) table() string {
	var b strings.Builder
	mode := "short"
	if full {
		mode = "full"
	}
	fmt.Fprintf(&b, "\nevt torture suite (%s)\n\n", mode)
	fmt.Fprintf(&b, "| what | count |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| processes killed with SIGKILL at random instants (appenders, consumers, repair) | %d |\n", r.crashes.Load())
	fmt.Fprintf(&b, "| power-loss images checked (store cut at a write boundary, unsynced data torn) | %d |\n", r.images.Load())
	fmt.Fprintf(&b, "| I/O faults injected (ENOSPC, EIO, failed fsync, read-only store) | %d |\n", r.faults.Load())
	fmt.Fprintf(&b, "| hostile inputs tried | %d |\n", r.inputs.Load())
	fmt.Fprintf(&b, "| seconds of fuzzing | %d |\n", r.fuzzSecs.Load())
	fmt.Fprintf(&b, "| acknowledged events checked after a crash, fault or image | %d |\n", r.acked.Load())
	fmt.Fprintf(&b, "| redeliveries of unacked group events (at least once) | %d |\n", r.redeliver.Load())
	if ms := r.loadMilli.Load(); ms > 0 {
		fmt.Fprintf(&b, "| load: 16 appenders, 4 followers, 4 consumers | %d events in %.1f s, %.0f events/s |\n",
			r.loadEvts.Load(), float64(ms)/1000, float64(r.loadEvts.Load())*1000/float64(ms))
	}
	fmt.Fprintf(&b, "| acknowledged events lost or doubled | %d |\n", r.lost.Load())
	return b.String()
}

// run is the outcome of one evt process.
type run struct {
	code        int
	out, errOut string
}

// evtEnv is the environment of every evt process: the test's, without
// EVT_ variables and with a config directory of its own, so that only the
// arguments say what evt does.
func evtEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVT_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "GOTRACEBACK=") {
			env = append(env, kv)
		}
	}
	return append(env, "XDG_CONFIG_HOME="+t.TempDir())
}

// evtCommand prepares evt with args, run in an empty directory (so no
// ./evt.yaml is read).
func evtCommand(t *testing.T, args ...string) *exec.Cmd {
	c := exec.Command(evtBin, args...)
	c.Env = evtEnv(t)
	c.Dir = t.TempDir()
	return c
}

// evt runs evt to completion with stdin and returns what it did.
func evt(t *testing.T, stdin string, args ...string) run {
	t.Helper()
	c := evtCommand(t, args...)
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("evt %s: %v", strings.Join(args, " "), err)
	}
	return run{code, out.String(), errOut.String()}
}

// mustEvt runs evt and fails the test unless it exits 0.
func mustEvt(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := evt(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("evt %s: exit %d: %s", strings.Join(args, " "), r.code, r.errOut)
	}
	return r.out
}

// checkErrorLine checks what CLI.md promises of a failure: the exit code
// wanted, and one line "evt: …" on stderr, with no Go stack trace.
func checkErrorLine(t *testing.T, what string, r run, wantCode int) {
	t.Helper()
	short := r.errOut
	if len(short) > 400 {
		short = short[:400] + "…"
	}
	if r.code != wantCode {
		t.Errorf("%s: exit %d, want %d (stderr %q)", what, r.code, wantCode, short)
	}
	msg := strings.TrimSuffix(r.errOut, "\n")
	if msg == "" || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "evt: ") {
		t.Errorf("%s: stderr %q, want one line \"evt: …\"", what, short)
	}
	if strings.Contains(r.errOut, "goroutine ") || strings.Contains(r.errOut, "panic") {
		t.Errorf("%s: a Go stack trace or panic: %q", what, r.errOut)
	}
}

// event is an envelope as evt prints it.
type event struct {
	Position uint64          `json:"position"`
	Stream   string          `json:"stream"`
	Version  uint64          `json:"version"`
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Data     json.RawMessage `json:"data"`
}

// parseEvents reads NDJSON envelopes; a line that is not one fails the
// test (a half-written event must never be printed).
func parseEvents(t *testing.T, ndjson string) []event {
	t.Helper()
	var evs []event
	sc := bufio.NewScanner(strings.NewReader(ndjson))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Position == 0 {
			t.Fatalf("not an event: %q (%v)", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

// replayAll returns every event of the store in position order, checking
// what must hold for any store: positions dense from 1, versions dense
// from 1 in each stream, no id twice in a stream.
func replayAll(t *testing.T, dir string) []event {
	t.Helper()
	evs := parseEvents(t, mustEvt(t, "", "--dir", dir, "replay"))
	checkDense(t, evs)
	return evs
}

func checkDense(t *testing.T, evs []event) {
	t.Helper()
	versions := map[string]uint64{}
	ids := map[string]uint64{}
	for i, e := range evs {
		if e.Position != uint64(i+1) {
			t.Fatalf("event %d has position %d: positions must be dense", i+1, e.Position)
		}
		if e.Version != versions[e.Stream]+1 {
			t.Fatalf("position %d: %s@%d, want version %d: versions must be dense", e.Position, e.Stream, e.Version, versions[e.Stream]+1)
		}
		versions[e.Stream] = e.Version
		key := e.Stream + "\x00" + e.ID
		if p, dup := ids[key]; dup {
			t.Fatalf("id %s of %s at positions %d and %d", e.ID, e.Stream, p, e.Position)
		}
		ids[key] = e.Position
	}
}

// verify runs evt verify and fails the test unless it passes.
func verify(t *testing.T, dir string) {
	t.Helper()
	if r := evt(t, "", "--dir", dir, "verify"); r.code != 0 || !strings.HasPrefix(r.out, "ok: ") {
		t.Fatalf("evt verify: exit %d: %s%s", r.code, r.out, r.errOut)
	}
}

// acked is an append the client saw succeed: evt exited 0 and printed
// "POSITION STREAM@VERSION" for it.
type acked struct {
	id       string
	stream   string
	position uint64
	version  uint64
}

// parseAcks reads evt append's output lines, one per event of ids.
func parseAcks(out string, ids []string) ([]acked, error) {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(ids) {
		return nil, fmt.Errorf("%d result lines for %d events: %q", len(lines), len(ids), out)
	}
	res := make([]acked, len(ids))
	for i, l := range lines {
		var a acked
		var sv string
		if _, err := fmt.Sscanf(l, "%d %s", &a.position, &sv); err != nil {
			return nil, fmt.Errorf("result line %q: %v", l, err)
		}
		at := strings.LastIndexByte(sv, '@')
		if at < 0 {
			return nil, fmt.Errorf("result line %q: no STREAM@VERSION", l)
		}
		if _, err := fmt.Sscanf(sv[at+1:], "%d", &a.version); err != nil {
			return nil, fmt.Errorf("result line %q: %v", l, err)
		}
		a.stream, a.id = sv[:at], ids[i]
		res[i] = a
	}
	return res, nil
}

// checkAcked checks that every acknowledged event is in evs exactly once,
// where its acknowledgement said, and counts them.
func checkAcked(t *testing.T, evs []event, acks map[string]acked) {
	t.Helper()
	byID := map[string][]event{}
	for _, e := range evs {
		byID[e.Stream+"\x00"+e.ID] = append(byID[e.Stream+"\x00"+e.ID], e)
	}
	for _, a := range acks {
		got := byID[a.stream+"\x00"+a.id]
		switch {
		case len(got) == 0:
			tally.lost.Add(1)
			t.Errorf("acknowledged event %s of %s (position %d) is lost", a.id, a.stream, a.position)
		case len(got) > 1:
			tally.lost.Add(1)
			t.Errorf("acknowledged event %s of %s is stored %d times", a.id, a.stream, len(got))
		case got[0].Position != a.position || got[0].Version != a.version:
			tally.lost.Add(1)
			t.Errorf("acknowledged event %s was told %d %s@%d, stored at %d %s@%d", a.id, a.position, a.stream, a.version,
				got[0].Position, got[0].Stream, got[0].Version)
		}
	}
	tally.acked.Add(int64(len(acks)))
}

// treeState lists every file and directory below root with its mode,
// size and modification time, to show that a command wrote nothing there.
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil // its own mtime changes when the store is made below it
		}
		state[p] = fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// diffTrees names what changed between two treeStates.
func diffTrees(before, after map[string]string) []string {
	var d []string
	for p, s := range after {
		if b, ok := before[p]; !ok {
			d = append(d, "new "+p)
		} else if b != s {
			d = append(d, "changed "+p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			d = append(d, "removed "+p)
		}
	}
	sort.Strings(d)
	return d
}

// killed says whether err is the exit of a process killed by SIGKILL.
func killed(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

// lineCollector gathers the lines a process prints to a pipe, as they
// come, so a test can wait for a line and read them after.
type lineCollector struct {
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func collectLines(r io.Reader) *lineCollector {
	lc := &lineCollector{done: make(chan struct{})}
	go func() {
		defer close(lc.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			lc.mu.Lock()
			lc.lines = append(lc.lines, sc.Text())
			lc.mu.Unlock()
		}
	}()
	return lc
}

func (lc *lineCollector) snapshot() []string {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return append([]string(nil), lc.lines...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(deadline time.Duration, cond func() bool) bool {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}
