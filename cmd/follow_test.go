package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

// A real `evt tail -f` follows a store while two other processes append to
// it: small segments (--segment-size 4096) make the log roll under the
// follower dozens of times.
const (
	followWriters = 2
	followCalls   = 50 // evt append processes per writer
	followBatch   = 10 // envelopes per evt append
	followEvents  = followWriters * followCalls * followBatch
	// followGuard bounds the whole run: a follower that misses an event
	// would otherwise wait for it forever.
	followGuard = 90 * time.Second
)

// followedLine is one line evt tail printed, and when the test read it.
type followedLine struct {
	Position uint64
	Stream   string
	Version  uint64
	Type     string
	Time     time.Time
	ID       string
	Data     struct{ W, I int }
	read     time.Time
}

// TestTailFollowProcesses: `evt tail -f`, watching or with --poll, prints
// every event that two concurrent writers (100 `evt append` processes)
// append, exactly once and in position order, while the log rolls.
func TestTailFollowProcesses(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"watch", nil},
		{"poll", []string{"--poll"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			// A marker event at position 1: once the follower has printed
			// it, it has read the store and goes on to follow.
			s, err := local.Open(dir, local.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			var b log.Batch
			if err := b.Add("ready-1", "Ready", "ready", []byte(`{}`), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
			s.Close()

			args := append([]string{"--dir", dir, "--segment-size", "4096", "tail", "-f", "--from", "start",
				"--count", fmt.Sprint(1 + followEvents), "-o", "json"}, tc.args...)
			follower := selfCommand(t, "evt", args...)
			var followerErr bytes.Buffer
			follower.Stderr = &followerErr
			stdout, err := follower.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := follower.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			lines := make(chan followedLine, 1+followEvents)
			var readErr error
			var readDone sync.WaitGroup
			readDone.Add(1)
			go func() {
				defer readDone.Done()
				defer close(lines)
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					var l followedLine
					if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
						readErr = fmt.Errorf("line %q: %v", sc.Text(), err)
						return
					}
					l.read = time.Now()
					lines <- l
				}
				readErr = sc.Err()
			}()
			go func() {
				readDone.Wait() // Wait closes stdout: read it all first
				exited <- follower.Wait()
			}()
			guard := time.AfterFunc(followGuard, func() { follower.Process.Kill() })
			defer guard.Stop()

			first, ok := <-lines
			if !ok || first.Stream != "ready-1" {
				follower.Process.Kill()
				<-exited
				t.Fatalf("the follower's first line: %+v (read error %v), want the ready-1 marker; stderr: %s", first, readErr, followerErr.String())
			}
			calls := make([][]*exec.Cmd, followWriters)
			for w := range calls {
				calls[w] = appendEnvelopeCalls(t, dir, w)
			}
			start := time.Now()
			var wg sync.WaitGroup
			appendErrs := make(chan error, followWriters)
			for w := range followWriters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					appendErrs <- runOneByOne(calls[w])
				}()
			}
			wg.Wait()
			appended := time.Since(start)
			close(appendErrs)
			for err := range appendErrs {
				if err != nil {
					follower.Process.Kill()
					<-exited
					t.Fatal(err)
				}
			}

			got := []followedLine{first}
			for l := range lines {
				got = append(got, l)
			}
			if err := <-exited; err != nil {
				t.Fatalf("the follower: %v (killed by the %v guard?) after printing %d events; stderr: %s", err, followGuard, len(got), followerErr.String())
			}
			if readErr != nil {
				t.Fatal(readErr)
			}
			t.Logf("%d processes appended %d events in %v; the follower printed its last one %v after the last append returned",
				followWriters*followCalls, followEvents, appended.Round(time.Millisecond), got[len(got)-1].read.Sub(start.Add(appended)).Round(time.Millisecond))
			checkFollowed(t, got)
			segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) < 10 {
				t.Errorf("the log has %d segments: with --segment-size 4096 it should have rolled under the follower many times", len(segs))
			}
			t.Logf("the log rolled into %d segments while followed", len(segs))
		})
	}
}

// appendEnvelopeCalls returns writer w's commands: followCalls `evt
// append` processes, each appending followBatch envelopes with ids
// w<w>-<i> to streams acct-<w>-<i mod 7>.
func appendEnvelopeCalls(t *testing.T, dir string, w int) []*exec.Cmd {
	t.Helper()
	var calls []*exec.Cmd
	for call := range followCalls {
		var in strings.Builder
		for j := range followBatch {
			i := call*followBatch + j
			fmt.Fprintf(&in, `{"stream":"acct-%d-%d","type":"Tick","data":{"w":%d,"i":%d},"id":"w%d-%d"}`+"\n", w, i%7, w, i, w, i)
		}
		c := selfCommand(t, "evt", "--dir", dir, "--segment-size", "4096", "append", "-q")
		c.Stdin = strings.NewReader(in.String())
		// Under -race a process sleeps 1 s at exit by default: 50 calls
		// one after the other would take a minute.
		c.Env = append(c.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		calls = append(calls, c)
	}
	return calls
}

// runOneByOne runs the commands in turn and stops at the first failure.
func runOneByOne(calls []*exec.Cmd) error {
	for n, c := range calls {
		var errOut bytes.Buffer
		c.Stderr = &errOut
		if err := c.Run(); err != nil {
			return fmt.Errorf("%s (call %d): %v: %s", strings.Join(c.Args, " "), n, err, errOut.String())
		}
	}
	return nil
}

// checkFollowed checks what the follower printed: the marker, then every
// appended event exactly once, in position order, with nothing skipped.
func checkFollowed(t *testing.T, got []followedLine) {
	t.Helper()
	if len(got) != 1+followEvents {
		t.Fatalf("the follower printed %d lines, want the marker and %d events", len(got), followEvents)
	}
	events := got[1:]
	seen := map[string]uint64{}
	next := make([]int, followWriters)
	var lat []time.Duration
	for n, l := range events {
		// Nothing else appends: positions are dense after the marker.
		if want := uint64(n + 2); l.Position != want {
			t.Fatalf("line %d: position %d after %d, want %d (position order, each event once)", n+2, l.Position, got[n].Position, want)
		}
		if p, dup := seen[l.ID]; dup {
			t.Fatalf("id %s printed twice, at positions %d and %d", l.ID, p, l.Position)
		}
		seen[l.ID] = l.Position
		w, i := l.Data.W, l.Data.I
		if w < 0 || w >= followWriters || l.ID != fmt.Sprintf("w%d-%d", w, i) || l.Stream != fmt.Sprintf("acct-%d-%d", w, i%7) {
			t.Fatalf("position %d: %s %s %+v is not an appended event", l.Position, l.Stream, l.ID, l.Data)
		}
		if i != next[w] {
			t.Fatalf("position %d: writer %d's event %d, want its event %d (each writer's in order)", l.Position, w, i, next[w])
		}
		next[w]++
		if want := uint64(i/7 + 1); l.Version != want {
			t.Fatalf("position %d: %s@%d, want version %d", l.Position, l.Stream, l.Version, want)
		}
		lat = append(lat, l.read.Sub(l.Time))
	}
	for w := range followWriters {
		for i := range followCalls * followBatch {
			if _, ok := seen[fmt.Sprintf("w%d-%d", w, i)]; !ok {
				t.Errorf("appended id w%d-%d was never printed", w, i)
			}
		}
	}
	// The event's time is taken under the append lock, before the write
	// and its fsync; the line is timed when the test read it. Rough, and
	// logged only (STYLE.md: a test never asserts a duration).
	slices.Sort(lat)
	t.Logf("append (event time) → line read by the test: p50 %v, p90 %v, p99 %v, max %v",
		lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)*99/100], lat[len(lat)-1])
}
