package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log/local"
)

// These tests share a store between real processes: the test binary run
// as "evt-appender" (see TestMain), a child that calls the CLI entry point
// once per append. Each call builds the command tree, opens the store,
// appends one event and closes the store, as a separate `evt append`
// invocation would; only the process start-up is saved, so 8 × 500
// appends stay within a CI budget.

const (
	processWriters = 8   // concurrent child processes
	processAppends = 500 // appends per child in TestConcurrentAppends
	processExpects = 100 // successful appends per child in TestConcurrentExpect
	processRetries = 200 // appends per child in TestConcurrentRetries
)

// appenderMain is the child: evt-appender MODE DIR STREAM WRITER COUNT.
//
//   - append: COUNT times `evt append STREAM Tick {"w":WRITER,"i":I} --id wWRITER-I`.
//   - retry: COUNT times the same with --id e-I, an id every writer uses,
//     printing "I POSITION VERSION" as evt reported it for each.
//   - expect: COUNT successful read-modify-writes: read the version V of
//     STREAM with `evt streams`, then `evt append ... --expect V` with V in
//     the data; on exit 3 (someone else appended first) read again and
//     retry. It prints the number of conflicts it saw.
//
// It exits 1 with the failing command's stderr on anything unexpected.
func appenderMain(args []string) int {
	if len(args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: evt-appender append|retry|expect DIR STREAM WRITER COUNT")
		return 2
	}
	mode, dir, stream := args[0], args[1], args[2]
	writer, err1 := strconv.Atoi(args[3])
	count, err2 := strconv.Atoi(args[4])
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "evt-appender: WRITER and COUNT must be numbers")
		return 2
	}
	// evt runs one command line in this process, as a separate evt
	// invocation would, and returns its exit code and stdout. Any exit code
	// but those in ok is reported on stderr with evt's message.
	evt := func(ok []int, args ...string) (int, []byte) {
		ios, _, out, errOut := newTestIOStreams()
		where := "--dir"
		if strings.HasPrefix(dir, "nats://") {
			where = "--store"
		}
		code := run(context.Background(), ios, append([]string{where, dir}, args...))
		if code != exitOK && !slices.Contains(ok, code) {
			fmt.Fprintf(os.Stderr, "evt-appender %d: evt %s: exit %d: %s", writer, strings.Join(args, " "), code, errOut)
		}
		return code, out.Bytes()
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "evt-appender %d: "+format+"\n", append([]any{writer}, args...)...)
		return 1
	}

	switch mode {
	case "append":
		for i := range count {
			data := fmt.Sprintf(`{"w":%d,"i":%d}`, writer, i)
			if code, _ := evt(nil, "append", stream, "Tick", data, "--id", fmt.Sprintf("w%d-%d", writer, i), "-q"); code != exitOK {
				return 1
			}
		}
		return 0
	case "retry":
		for i := range count {
			data := fmt.Sprintf(`{"w":%d,"i":%d}`, writer, i)
			code, out := evt(nil, "append", stream, "Tick", data, "--id", fmt.Sprintf("e-%d", i))
			if code != exitOK {
				return 1
			}
			// "POSITION STREAM@VERSION"
			f := strings.Fields(string(out))
			if len(f) != 2 || !strings.HasPrefix(f[1], stream+"@") {
				return fail("evt append printed %q", out)
			}
			fmt.Printf("%d %s %s\n", i, f[0], strings.TrimPrefix(f[1], stream+"@"))
		}
		return 0
	case "expect":
		conflicts := 0
		for i := 0; i < count; {
			var version uint64
			code, out := evt([]int{exitNotFound}, "streams", stream, "-o", "json")
			switch code {
			case exitOK:
				var head struct{ Version uint64 }
				if err := json.Unmarshal(out, &head); err != nil {
					return fail("evt streams printed %q: %v", out, err)
				}
				version = head.Version
			case exitNotFound: // no store or no stream yet: version 0
			default:
				return 1
			}
			v := strconv.FormatUint(version, 10)
			data := fmt.Sprintf(`{"w":%d,"i":%d,"read":%d}`, writer, i, version)
			code, _ = evt([]int{exitConflict}, "append", stream, "Counted", data, "--id", fmt.Sprintf("w%d-%d", writer, i), "--expect", v, "-q")
			switch code {
			case exitOK:
				i++
			case exitConflict:
				conflicts++
			default:
				return 1
			}
		}
		fmt.Println(conflicts)
		return 0
	}
	fmt.Fprintf(os.Stderr, "evt-appender: unknown mode %q\n", mode)
	return 2
}

// selfCommand runs the test binary as the testscript command name (evt or
// evt-appender), in an empty directory with no EVT_ variables and no config
// file, so that only the arguments say what it does.
func selfCommand(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(exe, args...)
	c.Args[0] = name
	c.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVT_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(c.Env, "XDG_CONFIG_HOME="+c.Dir)
	return c
}

// runWriters starts one evt-appender per stream at once, waits for all and
// returns their standard outputs.
func runWriters(t *testing.T, mode, dir string, streams []string, count int) []string {
	t.Helper()
	cmds := make([]*exec.Cmd, len(streams))
	outs := make([]*bytes.Buffer, len(streams))
	errs := make([]*bytes.Buffer, len(streams))
	for w, stream := range streams {
		c := selfCommand(t, "evt-appender", mode, dir, stream, strconv.Itoa(w), strconv.Itoa(count))
		outs[w], errs[w] = new(bytes.Buffer), new(bytes.Buffer)
		c.Stdout, c.Stderr = outs[w], errs[w]
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[w] = c
	}
	failed := false
	res := make([]string, len(streams))
	for w, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("writer %d: %v\n%s", w, err, errs[w])
			failed = true
		}
		res[w] = outs[w].String()
	}
	if failed {
		t.FailNow()
	}
	return res
}

// stored is one event as read back with the log package.
type stored struct {
	position, version, prev uint64
	time                    int64
	stream, id              string
	w, i                    int
	read                    *uint64
}

// scanStore reads every event of the store in position order and checks
// what must hold for any store: positions dense from 1, each stream's
// versions dense from 1 with prev pointing at the stream's previous event,
// times never going back, no id twice in a stream.
func scanStore(t *testing.T, dir string) []stored {
	t.Helper()
	s, err := local.Open(dir, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var events []stored
	type head struct{ version, last uint64 }
	heads := map[string]head{}
	ids := map[string]uint64{}
	var lastTime int64
	_, err = s.Scan(1, func(rec *codec.Record) error {
		var d struct {
			W, I int
			Read *uint64
		}
		if err := json.Unmarshal(rec.Data, &d); err != nil {
			return fmt.Errorf("position %d: data %s: %v", rec.Position, rec.Data, err)
		}
		e := stored{position: rec.Position, version: rec.Version, prev: rec.Prev, time: rec.Time,
			stream: string(rec.Stream), id: string(rec.ID), w: d.W, i: d.I, read: d.Read}
		if want := uint64(len(events) + 1); e.position != want {
			return fmt.Errorf("event %d has position %d, want %d (positions must be dense)", len(events)+1, e.position, want)
		}
		h := heads[e.stream]
		if e.version != h.version+1 || e.prev != h.last {
			return fmt.Errorf("position %d: %s@%d prev %d, want version %d prev %d", e.position, e.stream, e.version, e.prev, h.version+1, h.last)
		}
		heads[e.stream] = head{e.version, e.position}
		key := e.stream + "\x00" + e.id
		if p, dup := ids[key]; dup {
			return fmt.Errorf("id %s of %s at positions %d and %d", e.id, e.stream, p, e.position)
		}
		ids[key] = e.position
		if e.time < lastTime {
			return fmt.Errorf("position %d: time goes back", e.position)
		}
		lastTime = e.time
		events = append(events, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// checkWriters checks that writer w's events are exactly its ids w<w>-0 …
// w<w>-(count-1), once each, in the order it appended them.
func checkWriters(t *testing.T, events []stored, writers, count int) {
	t.Helper()
	next := make([]int, writers)
	for _, e := range events {
		if e.w < 0 || e.w >= writers {
			t.Fatalf("position %d: unknown writer %d", e.position, e.w)
		}
		if want := fmt.Sprintf("w%d-%d", e.w, e.i); e.id != want {
			t.Fatalf("position %d: id %q, data says %q", e.position, e.id, want)
		}
		if e.i != next[e.w] {
			t.Fatalf("position %d: writer %d's event %d, want its event %d (each once, in order)", e.position, e.w, e.i, next[e.w])
		}
		next[e.w]++
	}
	for w, n := range next {
		if n != count {
			t.Errorf("writer %d: %d events stored, want %d", w, n, count)
		}
	}
}

// evtOutput runs evt in a child process and returns its stdout.
func evtOutput(t *testing.T, args ...string) string {
	t.Helper()
	c := selfCommand(t, "evt", args...)
	var errOut bytes.Buffer
	c.Stderr = &errOut
	out, err := c.Output()
	if err != nil {
		t.Fatalf("evt %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return string(out)
}

// TestConcurrentAppends: 8 processes append 500 events each at once, to
// one stream or each to its own. Every event must be stored exactly once,
// at dense positions and dense versions, and evt verify must pass.
func TestConcurrentAppends(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sameStream bool
	}{
		{"same-stream", true},
		{"own-streams", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			streams := make([]string, processWriters)
			for w := range streams {
				streams[w] = fmt.Sprintf("writer-%d", w)
				if tc.sameStream {
					streams[w] = "shared-1"
				}
			}
			runWriters(t, "append", dir, streams, processAppends)

			events := scanStore(t, dir)
			total := processWriters * processAppends
			if len(events) != total {
				t.Fatalf("%d events stored, want %d", len(events), total)
			}
			checkWriters(t, events, processWriters, processAppends)
			switches := 0
			for n := 1; n < len(events); n++ {
				if events[n].w != events[n-1].w {
					switches++
				}
			}
			t.Logf("the writers took turns %d times (0 would mean they never overlapped)", switches)

			var want strings.Builder
			if tc.sameStream {
				fmt.Fprintf(&want, "shared-1\t%d\t%d\n", total, total)
			} else {
				last := map[string]uint64{}
				for _, e := range events {
					last[e.stream] = e.position
				}
				for _, s := range streams {
					fmt.Fprintf(&want, "%s\t%d\t%d\n", s, processAppends, last[s])
				}
			}
			var got strings.Builder
			for _, row := range strings.Split(strings.TrimSuffix(evtOutput(t, "--dir", dir, "streams"), "\n"), "\n") {
				f := strings.Split(row, "\t")
				if len(f) != 5 {
					t.Fatalf("evt streams row %q: want 5 tab-separated fields", row)
				}
				got.WriteString(strings.Join(f[:3], "\t") + "\n")
			}
			if got.String() != want.String() {
				t.Errorf("evt streams (stream, version, last position):\n%s\nwant:\n%s", got.String(), want.String())
			}
			wantVerify := fmt.Sprintf("ok: %d events in %d streams, ", total, len(strings.Split(strings.TrimSpace(want.String()), "\n")))
			if out := evtOutput(t, "--dir", dir, "verify"); !strings.HasPrefix(out, wantVerify) {
				t.Errorf("evt verify: %q, want %q…", out, wantVerify)
			}
		})
	}
}

// TestConcurrentExpect: 8 processes each make 100 read-modify-write
// appends to one stream: read the version with evt streams, append with
// --expect that version, retry on exit 3. No update may be lost: the
// stream ends at version 8 × 100, and every event was stored right after
// the version its writer read.
func TestConcurrentExpect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	streams := make([]string, processWriters)
	for w := range streams {
		streams[w] = "counter-1"
	}
	outs := runWriters(t, "expect", dir, streams, processExpects)
	conflicts := 0
	for w, out := range outs {
		n, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("writer %d printed %q, want its number of conflicts", w, out)
		}
		conflicts += n
	}
	t.Logf("%d appends, %d conflicts retried", processWriters*processExpects, conflicts)

	events := scanStore(t, dir)
	total := processWriters * processExpects
	if len(events) != total {
		t.Fatalf("%d events stored, want %d: updates were lost or doubled", len(events), total)
	}
	checkWriters(t, events, processWriters, processExpects)
	for _, e := range events {
		if e.read == nil {
			t.Fatalf("position %d: no \"read\" in its data", e.position)
		}
		if *e.read != e.version-1 {
			t.Fatalf("position %d: %s@%d was appended by a writer that read version %d (--expect let a stale write through)", e.position, e.stream, e.version, *e.read)
		}
	}
	if out := evtOutput(t, "--dir", dir, "streams", "counter-1"); !strings.HasPrefix(out, fmt.Sprintf("counter-1\t%d\t%d\t", total, total)) {
		t.Errorf("evt streams counter-1: %q, want version %d", out, total)
	}
	if out := evtOutput(t, "--dir", dir, "verify"); !strings.HasPrefix(out, fmt.Sprintf("ok: %d events in 1 streams, ", total)) {
		t.Errorf("evt verify: %q", out)
	}
}

// TestConcurrentRetries: 8 processes append the same 200 ids (e-0 … e-199)
// to one stream at once, as 8 producers retrying the same events would.
// Each id must be stored exactly once, in order, and every process must be
// told the position and version of the one stored event.
func TestConcurrentRetries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	streams := make([]string, processWriters)
	for w := range streams {
		streams[w] = "retried-1"
	}
	outs := runWriters(t, "retry", dir, streams, processRetries)

	events := scanStore(t, dir)
	if len(events) != processRetries {
		t.Fatalf("%d events stored, want %d (one per id)", len(events), processRetries)
	}
	for n, e := range events {
		if want := fmt.Sprintf("e-%d", n); e.id != want || e.i != n {
			t.Fatalf("position %d: id %s with data i=%d, want %s", e.position, e.id, e.i, want)
		}
	}
	for w, out := range outs {
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != processRetries {
			t.Fatalf("writer %d reported %d appends, want %d", w, len(lines), processRetries)
		}
		for _, l := range lines {
			var i int
			var pos, version uint64
			if _, err := fmt.Sscanf(l, "%d %d %d", &i, &pos, &version); err != nil {
				t.Fatalf("writer %d: line %q: %v", w, l, err)
			}
			if e := events[i]; pos != e.position || version != e.version {
				t.Fatalf("writer %d: evt append --id e-%d reported %d retried-1@%d, stored at %d retried-1@%d", w, i, pos, version, e.position, e.version)
			}
		}
	}
	if out := evtOutput(t, "--dir", dir, "verify"); !strings.HasPrefix(out, fmt.Sprintf("ok: %d events in 1 streams, ", processRetries)) {
		t.Errorf("evt verify: %q", out)
	}
}
