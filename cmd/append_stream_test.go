package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A regular file on stdin takes the streaming path (log.Appender: the
// batch is written while it is parsed); a pipe takes the buffered one. The
// scripts feed stdin through a pipe, so these tests give evt a real file.

// evtWithFile runs evt with the file at path as its stdin and returns its
// exit code, stdout and stderr.
func evtWithFile(t *testing.T, path string, args ...string) (int, string, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := selfCommand(t, "evt", args...)
	c.Stdin = f
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), errOut.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// envelopes makes n envelope lines over streams s-0..s-(k-1), ids e-i.
func envelopes(n, k int) []string {
	var lines []string
	for i := 0; i < n; i++ {
		lines = append(lines, fmt.Sprintf(`{"stream":"s-%d","type":"T","id":"e-%d","data":{"i":%d,"pad":"%s"}}`, i%k, i, i, strings.Repeat("x", 100)))
	}
	return lines
}

func TestAppendStreamingFromFile(t *testing.T) {
	dir := t.TempDir()
	// Enough lines for many parse blocks and several 4 MiB writes.
	good := writeLines(t, envelopes(60000, 50))
	code, _, errOut := evtWithFile(t, good, "--dir", dir, "append", "-q")
	if code != 0 {
		t.Fatalf("append: exit %d: %s", code, errOut)
	}
	if out := evtOutput(t, "--dir", dir, "verify"); !strings.HasPrefix(out, "ok: 60000 events in 50 streams") {
		t.Fatalf("verify: %s", out)
	}
	events := scanIDs(t, dir)
	for i := 0; i < 60000; i++ {
		if events[fmt.Sprintf("e-%d", i)] != uint64(i+1) {
			t.Fatalf("e-%d at position %d, want %d", i, events[fmt.Sprintf("e-%d", i)], i+1)
		}
	}
	before := evtOutput(t, "--dir", dir, "streams")

	// A retry of the same file appends nothing and reports the originals.
	code, out, errOut := evtWithFile(t, good, "--dir", dir, "append")
	if code != 0 || !strings.HasPrefix(out, "1 s-0@1\n2 s-1@1\n") || !strings.Contains(errOut, "60000 of 60000 events were already") {
		t.Fatalf("retry: exit %d, %q…, %s", code, out[:min(len(out), 40)], errOut)
	}

	// A bad line far into the file (after several blocks were written):
	// exit 1 naming it, and the store unchanged.
	lines := envelopes(50000, 7)
	lines[45000] = `{"stream":"s-1","type":"T","data":{"broken":}`
	code, _, errOut = evtWithFile(t, writeLines(t, lines), "--dir", dir, "append", "-q")
	if code != 1 || !strings.Contains(errOut, "line 45001") {
		t.Fatalf("bad line: exit %d: %s", code, errOut)
	}
	// An expectation that fails on a stream first seen late in the file.
	lines = envelopes(50000, 7)
	lines[49999] = `{"stream":"late-1","type":"T","data":{}}`
	code, _, errOut = evtWithFile(t, writeLines(t, lines), "--dir", dir, "append", "-q", "--expect", "none")
	if code != 3 || !strings.Contains(errOut, "s-0 is at version") {
		t.Fatalf("expect: exit %d: %s", code, errOut)
	}
	if after := evtOutput(t, "--dir", dir, "streams"); after != before {
		t.Fatalf("the store changed:\n%s\nthen\n%s", before, after)
	}
	if out := evtOutput(t, "--dir", dir, "verify"); !strings.HasPrefix(out, "ok: 60000 events") {
		t.Fatalf("verify after aborted batches: %s", out)
	}

	// Data lines for one stream, with --expect and -o json.
	data := writeLines(t, []string{`{"a":1}`, `{"a": 2}`, `{"a":3}`})
	code, out, errOut = evtWithFile(t, data, "--dir", dir, "append", "d-1", "Set", "--expect", "none", "--jq", ".data.a")
	if code != 0 || out != "1\n2\n3\n" {
		t.Fatalf("data lines: exit %d, %q, %s", code, out, errOut)
	}
	// --id names one event: a file of three lines is a usage error.
	code, _, errOut = evtWithFile(t, data, "--dir", dir, "append", "d-2", "Set", "--id", "x")
	if code != 2 || !strings.Contains(errOut, "--id names one event") {
		t.Fatalf("--id: exit %d: %s", code, errOut)
	}
	// An empty file: no events.
	code, _, errOut = evtWithFile(t, writeLines(t, nil), "--dir", dir, "append")
	if code != 1 || !strings.Contains(errOut, "no events on stdin") {
		t.Fatalf("empty: exit %d: %s", code, errOut)
	}
}

// scanIDs maps each event id to its position.
func scanIDs(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	out := evtOutput(t, "--dir", dir, "replay", "--jq", `"\(.id) \(.position)"`)
	ids := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var id string
		var pos uint64
		fmt.Sscan(line, &id, &pos)
		ids[id] = pos
	}
	return ids
}
