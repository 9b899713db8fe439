package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

// Compaction with real processes (issue 6, "Must show"): `evt compact`
// run again and again while `evt tail -f`, two `evt consume` members and
// two appenders work on the store; and `evt compact` killed with SIGKILL
// at random instants, many times.

// quickExit stops a child built with -race from sleeping 1 s at exit.
func quickExit(c *exec.Cmd) *exec.Cmd {
	c.Env = append(c.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return c
}

// evtRun runs evt in a child process and returns its stdout; a failure's
// error carries evt's stderr and an *exec.ExitError.
func evtRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	c := quickExit(selfCommand(t, "evt", args...))
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("evt %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// evtMust is evtRun that fails the test on any error.
func evtMust(t *testing.T, args ...string) string {
	t.Helper()
	out, err := evtRun(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// retentionNote is what consume says of events retention removed before
// its group handled them.
var retentionNote = regexp.MustCompile(`^evt: group G: (1 event was|\d+ events were) removed by retention before this group handled (it|them) \(evt group show G\)$`)

// Under load: writer w's event i goes to stream loadStream(w, i), with id
// w<w>-<i> and data {"w":w,"i":i}. acct-* streams are kept (one is
// truncated, one deleted while written), tmp-* keep their newest 2
// (--max-count 2), job-* go once the group acked them (--until-acked).
// A writer's first loadEarly events go to tmp-* and job-* only, so that
// the oldest segments empty and compaction can remove them whole.
const (
	loadWriters    = 2
	loadBatch      = 10 // envelopes per evt append
	loadMinCalls   = 30 // evt append processes per writer, at least
	loadMaxCalls   = 400
	loadCompacts   = 20
	loadGuard      = 120 * time.Second
	loadTmpCount   = 2
	loadConsumers  = 2
	loadGroupBatch = 20 // consume --batch: one write(2) per batch
	loadEarly      = 150
)

func loadStream(w, i int) string {
	if i < loadEarly {
		// Only events the limits remove soon: the first segments can
		// go whole.
		if i%2 == 0 {
			return fmt.Sprintf("tmp-%d-%d", w, i/2%3)
		}
		return fmt.Sprintf("job-%d-%d", w, i/2%2)
	}
	switch k := i / 5; i % 5 {
	case 3:
		return fmt.Sprintf("tmp-%d-%d", w, k%3)
	case 4:
		return fmt.Sprintf("job-%d-%d", w, k%2)
	default:
		return fmt.Sprintf("acct-%d-%d", w, k%4)
	}
}

// loadEvent is an event an appender stored, as its writer knows it.
type loadEvent struct {
	stream  string
	version uint64
	w, i    int
}

// replayedLine is one line of evt replay, tail or consume -o json.
type replayedLine struct {
	Position uint64
	Stream   string
	Version  uint64
	Type     string
	Time     time.Time
	ID       string
	Data     json.RawMessage
	raw      string
}

func parseEventLines(t *testing.T, what, text string) []replayedLine {
	t.Helper()
	var out []replayedLine
	for n, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if l == "" {
			continue
		}
		var e replayedLine
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%s line %d: %q: %v", what, n+1, l, err)
		}
		e.raw = l
		out = append(out, e)
	}
	return out
}

// TestCompactionUnderLoad: while two appenders (`evt append` processes, 10
// envelopes each, --segment-size 4096) write acct-*, tmp-* (--max-count
// 2) and job-* (--until-acked) streams, `evt tail -f --from start`
// follows the store and two `evt consume G` members print and ack every
// stream's events, evt compact runs 20 times, and a stream is truncated
// (twice) and another deleted meanwhile. Then:
//
//   - what evt replay shows at the end is exactly what the writers
//     appended minus what the limits remove: compaction lost nothing;
//   - the follower printed every surviving event, once, in position
//     order, as replay shows it (and nothing that was never appended);
//   - the members together printed every surviving event at least once,
//     never a stream's version after a later one;
//   - evt verify passes.
func TestCompactionUnderLoad(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	seg := []string{"--dir", dir, "--segment-size", "4096"}
	// The follower's ready marker, in a stream the group's acks remove.
	evtMust(t, append(seg, "append", "job-ready", "Ready", "{}", "-q")...)
	evtMust(t, append(seg, "retention", "set", "tmp-*", "--max-count", strconv.Itoa(loadTmpCount))...)
	evtMust(t, append(seg, "retention", "set", "job-*", "--until-acked")...)
	if out := evtMust(t, append(seg, "group", "create", "G", "--from", "start", "--ack-wait", "5m")...); out != "created group G at position 1\n" {
		t.Fatalf("evt group create: %q", out)
	}

	var everyone []*exec.Cmd // killed if the test gives up
	var everyoneMu sync.Mutex
	started := func(c *exec.Cmd) {
		everyoneMu.Lock()
		everyone = append(everyone, c)
		everyoneMu.Unlock()
	}
	killAll := func() {
		everyoneMu.Lock()
		defer everyoneMu.Unlock()
		for _, c := range everyone {
			if c.Process != nil {
				c.Process.Kill()
			}
		}
	}
	cuts := map[string]uint64{} // stream → the version its cut removes up to
	cut := func(args ...string) {
		t.Helper()
		out := evtMust(t, append(append(seg, args...), "-o", "json")...)
		var r struct {
			Stream         string
			ThroughVersion uint64 `json:"through_version"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("evt %s printed %q: %v", strings.Join(args, " "), out, err)
		}
		cuts[r.Stream] = max(cuts[r.Stream], r.ThroughVersion)
	}

	guard := time.AfterFunc(loadGuard, killAll)
	defer guard.Stop()
	defer killAll()

	// The follower.
	follower := quickExit(selfCommand(t, "evt", append(seg, "tail", "-f", "--from", "start", "-o", "json")...))
	var followerErr bytes.Buffer
	follower.Stderr = &followerErr
	stdout, err := follower.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	started(follower)
	var (
		followedMu  sync.Mutex
		followed    []string
		sawReady    = make(chan struct{})
		sawDone     = make(chan struct{})
		followerOut = make(chan error, 1)
	)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		ready, done := false, false
		for sc.Scan() {
			l := sc.Text()
			followedMu.Lock()
			followed = append(followed, l)
			followedMu.Unlock()
			if !ready && strings.Contains(l, `"stream":"job-ready"`) {
				ready = true
				close(sawReady)
			}
			if !done && strings.Contains(l, `"stream":"done-1"`) {
				done = true
				close(sawDone)
			}
		}
		followerOut <- sc.Err()
	}()
	followerExited := make(chan error, 1)
	go func() {
		err := <-followerOut // Wait closes stdout: read it all first
		werr := follower.Wait()
		if err != nil && werr == nil {
			werr = err
		}
		followerExited <- werr
	}()
	select {
	case <-sawReady:
	case err := <-followerExited:
		t.Fatalf("the follower exited before printing job-ready: %v: %s", err, followerErr.String())
	}

	// The members: both print to one file opened with O_APPEND. A batch
	// (at most 20 short lines) is one write(2), and a member acks an
	// event only after writing it, while the group (--ordering stream)
	// hands out a stream's next event only once the previous one is
	// acked: in the file, a stream's events must come in order.
	consumedPath := filepath.Join(root, "consumed.ndjson")
	consumed, err := os.OpenFile(consumedPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer consumed.Close()
	type member struct {
		cmd    *exec.Cmd
		stderr *bytes.Buffer
		waited chan error
	}
	var members []*member
	for range loadConsumers {
		c := quickExit(selfCommand(t, "evt", append(seg, "consume", "G", "--batch", strconv.Itoa(loadGroupBatch))...))
		m := &member{cmd: c, stderr: new(bytes.Buffer), waited: make(chan error, 1)}
		c.Stdout, c.Stderr = consumed, m.stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		started(c)
		go func() { m.waited <- c.Wait() }()
		members = append(members, m)
	}

	// The appenders: each runs evt append processes one after the other
	// until the compactions are over (and at least loadMinCalls).
	stop := make(chan struct{})
	abort := make(chan struct{}) // the test failed: stop at once
	var calls [loadWriters]atomic.Int64
	appended := make([][]loadEvent, loadWriters)
	appendErrs := make(chan error, loadWriters)
	var appenders sync.WaitGroup
	for w := range loadWriters {
		appenders.Add(1)
		go func() {
			defer appenders.Done()
			versions := map[string]uint64{}
			for call := 0; call < loadMaxCalls; call++ {
				select {
				case <-abort:
					appendErrs <- nil
					return
				default:
				}
				if call >= loadMinCalls {
					select {
					case <-stop:
						appendErrs <- nil
						return
					default:
					}
				}
				var in strings.Builder
				var batch []loadEvent
				next := map[string]uint64{}
				for j := range loadBatch {
					i := call*loadBatch + j
					stream := loadStream(w, i)
					if next[stream] == 0 {
						next[stream] = versions[stream]
					}
					next[stream]++
					batch = append(batch, loadEvent{stream, next[stream], w, i})
					fmt.Fprintf(&in, `{"stream":%q,"type":"Tick","data":{"w":%d,"i":%d},"id":"w%d-%d"}`+"\n", stream, w, i, w, i)
				}
				c := quickExit(selfCommand(t, "evt", append(seg, "append", "-q")...))
				c.Stdin = strings.NewReader(in.String())
				var errOut bytes.Buffer
				c.Stderr = &errOut
				if err := c.Run(); err != nil {
					appendErrs <- fmt.Errorf("writer %d, call %d: %v: %s", w, call, err, errOut.String())
					return
				}
				for s, v := range next {
					versions[s] = v
				}
				appended[w] = append(appended[w], batch...)
				calls[w].Add(1)
			}
			appendErrs <- nil
		}()
	}

	defer func() {
		close(abort)
		appenders.Wait()
	}()

	// Compactions, a truncate and a delete, while all that runs.
	for calls[0].Load() < 5 || calls[1].Load() < 5 {
		time.Sleep(10 * time.Millisecond)
	}
	callsBefore := calls[0].Load() + calls[1].Load()
	var dropped, rewritten, removed uint64
	for k := range loadCompacts {
		switch k {
		case 1:
			// Once this is in a later segment and the group acked the
			// marker, the marker is not its stream's newest record
			// (which compaction keeps): the first segment can go whole.
			evtMust(t, append(seg, "append", "job-ready", "Go", "{}", "-q")...)
		case 3, 12:
			for calls[0].Load() < loadEarly/loadBatch+3 {
				time.Sleep(10 * time.Millisecond) // acct-0-1 has events
			}
			out := evtMust(t, append(seg, "streams", "acct-0-1", "-o", "json")...)
			var h struct{ Version uint64 }
			if err := json.Unmarshal([]byte(out), &h); err != nil || h.Version < 2 {
				t.Fatalf("evt streams acct-0-1: %q (%v)", out, err)
			}
			cut("truncate", "acct-0-1", "--before", strconv.FormatUint(h.Version/2+1, 10))
		case 6:
			cut("delete", "acct-1-2")
		}
		out := evtMust(t, append(seg, "compact", "-o", "json")...)
		var rep struct{ Dropped, Rewritten, Removed uint64 }
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("evt compact printed %q: %v", out, err)
		}
		dropped += rep.Dropped
		rewritten += rep.Rewritten
		removed += rep.Removed
		time.Sleep(50 * time.Millisecond)
	}
	callsDuring := calls[0].Load() + calls[1].Load() - callsBefore
	close(stop)
	appenders.Wait()
	close(appendErrs)
	for err := range appendErrs {
		if err != nil {
			t.Fatal(err)
		}
	}
	out := evtMust(t, append(seg, "compact", "-o", "json")...)
	t.Logf("%d evt compact runs while %d evt append calls ran: %d records dropped, %d segments rewritten, %d removed; last run: %s",
		loadCompacts, callsDuring, dropped, rewritten, removed, strings.TrimSpace(out))

	// The end marker: once the follower printed it, it has read all.
	out = evtMust(t, append(seg, "append", "done-1", "Done", "{}")...)
	var donePos uint64
	if _, err := fmt.Sscanf(out, "%d done-1@1", &donePos); err != nil {
		t.Fatalf("evt append done-1 printed %q: %v", out, err)
	}
	select {
	case <-sawDone:
	case err := <-followerExited:
		t.Fatalf("the follower exited before printing done-1: %v: %s", err, followerErr.String())
	}

	// The group has caught up once everything before the end is acked.
	s, err := local.Open(dir, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stall := newStallGuard(loadGuard / 2)
	for {
		st, err := s.GroupState("G")
		if err != nil {
			t.Fatal(err)
		}
		if stall.stalled(st.Committed) {
			t.Fatalf("the group is at position %d of %d (%d pending, %d parked), no progress in %v", st.Committed, donePos+1, len(st.Pending), len(st.Parked), loadGuard/2)
		}
		if st.Committed == donePos+1 {
			if len(st.Pending) != 0 || len(st.Parked) != 0 {
				t.Fatalf("the group caught up with %d pending and %d parked events: %v", len(st.Pending), len(st.Parked), st.Parked)
			}
			break
		}
		for n, m := range members {
			select {
			case err := <-m.waited:
				t.Fatalf("member %d exited by itself: %v: %s", n+1, err, m.stderr.String())
			default:
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Close()

	// Everyone stops on SIGINT: exit 130, nothing on stderr.
	stopped := func(what string, c *exec.Cmd, waited <-chan error, stderr *bytes.Buffer) {
		t.Helper()
		if err := c.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		err := <-waited
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Errorf("%s after SIGINT: %v, want exit %d", what, err, exitInterrupted)
		}
		// read once the process is gone; a member may say, once per
		// lease that first saw them, that --max-count removed tmp-*
		// events before the group got to them (issue 14)
		for _, line := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
			if line != "" && !retentionNote.MatchString(line) {
				t.Errorf("%s wrote to stderr: %s", what, stderr)
				break
			}
		}
	}
	for n, m := range members {
		stopped(fmt.Sprintf("member %d", n+1), m.cmd, m.waited, m.stderr)
	}
	stopped("the follower", follower, followerExited, &followerErr)
	guard.Stop()

	// What must survive: every appended event but tmp-* beyond the newest
	// 2, job-* (all acked) and what the truncate and delete cut.
	evtMust(t, append(seg, "compact")...)
	replayed := parseEventLines(t, "evt replay", evtMust(t, append(seg, "replay", "-o", "json")...))
	heads := map[string]uint64{}
	byID := map[string]loadEvent{}
	for _, evs := range appended {
		for _, e := range evs {
			heads[e.stream] = max(heads[e.stream], e.version)
			byID[fmt.Sprintf("w%d-%d", e.w, e.i)] = e
		}
	}
	survives := func(e loadEvent) bool {
		switch {
		case strings.HasPrefix(e.stream, "job-"):
			return false
		case strings.HasPrefix(e.stream, "tmp-") && e.version+loadTmpCount <= heads[e.stream]:
			return false
		}
		return e.version > cuts[e.stream]
	}
	want := map[string]bool{} // ids
	for id, e := range byID {
		if survives(e) {
			want[id] = true
		}
	}
	// checkEvent checks that a line printed by evt is an appended event
	// as its writer stored it.
	checkEvent := func(what string, l replayedLine) {
		t.Helper()
		if l.Stream == "job-ready" || l.Stream == "done-1" {
			return
		}
		e, ok := byID[l.ID]
		var d struct{ W, I int }
		if !ok || json.Unmarshal(l.Data, &d) != nil || d.W != e.w || d.I != e.i || l.Stream != e.stream || l.Version != e.version {
			t.Fatalf("%s printed %s: not an appended event (want %+v)", what, l.raw, e)
		}
	}
	survivors := map[uint64]replayedLine{}
	var last uint64
	for _, l := range replayed {
		checkEvent("evt replay", l)
		if l.Position <= last {
			t.Fatalf("evt replay: position %d after %d", l.Position, last)
		}
		last = l.Position
		survivors[l.Position] = l
		if l.Stream == "done-1" {
			continue
		}
		if !want[l.ID] {
			t.Errorf("evt replay shows %s@%d (%s), which the limits remove", l.Stream, l.Version, l.ID)
		}
		delete(want, l.ID)
	}
	if len(want) > 0 {
		var lost []string
		for id := range want {
			lost = append(lost, fmt.Sprintf("%s (%s@%d)", id, byID[id].stream, byID[id].version))
		}
		slices.Sort(lost)
		t.Fatalf("%d surviving events are gone from evt replay: %v", len(lost), lost[:min(len(lost), 20)])
	}
	if len(replayed) == 0 || replayed[len(replayed)-1].Stream != "done-1" {
		t.Fatalf("evt replay should end with done-1: %d lines", len(replayed))
	}

	// The follower: strictly increasing positions, every survivor as
	// replay shows it.
	followedMu.Lock()
	lines := parseEventLines(t, "the follower", strings.Join(followed, "\n"))
	followedMu.Unlock()
	last = 0
	seen := map[uint64]bool{}
	for _, l := range lines {
		checkEvent("the follower", l)
		if l.Position <= last {
			t.Fatalf("the follower printed position %d after %d (lost order or a duplicate)", l.Position, last)
		}
		last = l.Position
		seen[l.Position] = true
		if r, ok := survivors[l.Position]; ok && r.raw != l.raw {
			t.Errorf("the follower printed %s\nevt replay shows %s", l.raw, r.raw)
		}
	}
	missed := 0
	for p, r := range survivors {
		if !seen[p] {
			if missed < 10 {
				t.Errorf("the follower never printed %s", r.raw)
			}
			missed++
		}
	}
	if missed > 0 {
		t.Fatalf("the follower missed %d of %d surviving events", missed, len(survivors))
	}

	// The members: every survivor at least once, per stream in order.
	b, err := os.ReadFile(consumedPath)
	if err != nil {
		t.Fatal(err)
	}
	got := parseEventLines(t, "the members", string(b))
	delivered := map[uint64]int{}
	lastVersion := map[string]uint64{}
	dups := 0
	for _, l := range got {
		checkEvent("a member", l)
		if r, ok := survivors[l.Position]; ok && (r.ID != l.ID || r.Stream != l.Stream || r.Version != l.Version) {
			t.Errorf("a member printed %s\nevt replay shows %s", l.raw, r.raw)
		}
		delivered[l.Position]++
		if delivered[l.Position] > 1 {
			dups++
		}
		if v := lastVersion[l.Stream]; l.Version < v {
			t.Errorf("the members printed %s@%d after version %d (per-stream order)", l.Stream, l.Version, v)
		}
		lastVersion[l.Stream] = max(lastVersion[l.Stream], l.Version)
	}
	missed = 0
	for p, r := range survivors {
		if delivered[p] == 0 {
			if missed < 10 {
				t.Errorf("no member printed %s", r.raw)
			}
			missed++
		}
	}
	if missed > 0 {
		t.Fatalf("the members never delivered %d of %d surviving events", missed, len(survivors))
	}
	if out := evtMust(t, append(seg, "verify")...); !strings.HasPrefix(out, "ok: ") {
		t.Errorf("evt verify: %q", out)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	t.Logf("%d events appended, %d survive (cuts %v); the follower printed %d events, the members %d (%d twice); %d segments at the end",
		len(byID), len(survivors), cuts, len(lines), len(got), dups, len(segs))
}

// The store TestCompactionSIGKILL kills compactions of, in batches of
// killBatch events of ~200 bytes with --segment-size 65536 (a segment per
// batch), in four parts:
//
//   - 8%: only events that go: old tmp-* events (--max-count 3), del-*
//     (deleted later), q-* (--until-acked, acked by group Q): these
//     oldest segments are removed whole;
//   - 62%: only keep-* streams, which no limit touches: compaction reads
//     these segments and leaves them alone;
//   - 22% and 8%: all kinds of streams, acct-* among them (truncated,
//     some twice, one wholly), with the cut markers of a delete and
//     truncate round before each part: these segments are rewritten.
//
// Rewrites cost a few fsyncs per segment, which is what bounds the size
// of the default run.
const (
	killBatch   = 280
	killSegSize = 65536
)

// buildKillStore builds that store with the log package (an evt append
// per batch would take seconds) and the CLI for the policy and the group.
func buildKillStore(t *testing.T, dir string, events int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(6, uint64(events)))
	gone := func() string {
		switch k := rng.IntN(100); {
		case k < 50:
			return fmt.Sprintf("tmp-%02d", rng.IntN(30))
		case k < 80:
			return fmt.Sprintf("del-%d", rng.IntN(10))
		default:
			return fmt.Sprintf("q-%d", rng.IntN(5))
		}
	}
	keep := func() string { return fmt.Sprintf("keep-%02d", rng.IntN(50)) }
	mixed := func() string {
		switch k := rng.IntN(100); {
		case k < 35:
			return fmt.Sprintf("acct-%02d", rng.IntN(50))
		case k < 50:
			return keep()
		default:
			return gone()
		}
	}
	pad := strings.Repeat("p", 120)
	i, queued := 0, 0
	appendEvents := func(n int, streamOf func() string) {
		s, err := local.Open(dir, local.Options{Create: true, SegmentSize: killSegSize, Sync: local.SyncNone})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for n > 0 {
			var b log.Batch
			for n > 0 && b.Len() < killBatch {
				stream := streamOf()
				for run := 1 + rng.IntN(3); run > 0 && n > 0 && b.Len() < killBatch; run-- {
					data := fmt.Appendf(nil, `{"i":%d,"pad":%q}`, i, pad)
					if err := b.Add(stream, "Tick", fmt.Sprintf("e%d", i), data, nil); err != nil {
						t.Fatal(err)
					}
					i++
					n--
					if strings.HasPrefix(stream, "q-") {
						queued++
					}
				}
			}
			if _, err := s.Append(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
		}
	}
	cuts := func(round int) {
		s, err := local.Open(dir, local.Options{Create: true, SegmentSize: killSegSize, Sync: local.SyncNone})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for a := range 25 / round {
			stream := fmt.Sprintf("acct-%02d", a)
			h, err := s.Head(stream)
			if errors.Is(err, log.ErrNotFound) {
				continue // cut whole before, and not appended to since
			}
			if err != nil {
				t.Fatal(err)
			}
			before := h.Version/2 + 1
			if a == 0 {
				before = h.Version + 1 // every event
			}
			if _, err := s.Truncate(context.Background(), stream, before, log.Expectation{}); err != nil {
				t.Fatal(err)
			}
		}
		// Round 1 deletes del-0, 2, 4, 6, 8 (which come back with the
		// events appended after), round 2 the others.
		for d := round - 1; d < 10; d += 2 {
			if _, err := s.Delete(context.Background(), fmt.Sprintf("del-%d", d), log.Expectation{}); err != nil && !errors.Is(err, log.ErrNotFound) {
				t.Fatal(err)
			}
		}
		if _, err := s.Truncate(context.Background(), "tmp-00", 5, log.Expectation{}); err != nil {
			t.Fatal(err)
		}
	}
	appendEvents(events*8/100, gone)
	appendEvents(events*62/100, keep)
	cuts(1)
	appendEvents(events*22/100, mixed)
	cuts(2)
	appendEvents(events-i, mixed)

	evtMust(t, "--dir", dir, "retention", "set", "tmp-*", "--max-count", "3")
	evtMust(t, "--dir", dir, "retention", "set", "q-*", "--until-acked")
	evtMust(t, "--dir", dir, "group", "create", "Q", "q-*", "--from", "start")
	// The group acks a little more than the q-* events of the first
	// part: they go, and so do some of the later ones.
	evtMust(t, "--dir", dir, "consume", "Q", "--once", "--count", strconv.Itoa(queued/3))
}

// copyDir copies a store directory, subdirectories included.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// segmentFiles lists a store's segment, offsets and unfinished-compaction
// files with their sizes: what compaction changes.
func segmentFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".seg") || strings.HasSuffix(n, ".idx") || strings.HasSuffix(n, ".compact") || strings.HasSuffix(n, ".tmp") {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			files[n] = fi.Size()
		}
	}
	return files
}

func sameFiles(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for n, s := range a {
		if t, ok := b[n]; !ok || t != s {
			return false
		}
	}
	return true
}

// firstDiff describes the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for n := range max(len(g), len(w)) {
		var gl, wl string
		if n < len(g) {
			gl = g[n]
		}
		if n < len(w) {
			wl = w[n]
		}
		if gl != wl {
			return fmt.Sprintf("%d lines, want %d; line %d:\n got %.300s\nwant %.300s", len(g)-1, len(w)-1, n+1, gl, wl)
		}
	}
	return "no difference"
}

// TestCompactionSIGKILL: a store of 9,000 events in 33 segments (see
// buildKillStore; 45,000 in ~165 with EVT_TORTURE=full) whose compaction
// removes 3 segments and rewrites 9. Over and over (40 times, 200 with
// EVT_TORTURE=full, 10 with -short, EVT_COMPACT_KILLS=N), a fresh copy of
// it is compacted by `evt compact`, killed with SIGKILL at a random
// instant (see below). After each kill: evt verify passes, evt replay -o
// json and evt streams -o json print exactly what they printed before
// any compaction (positions, versions, ids, times, data), and a second
// evt compact completes, leaves the same segment and offsets files as an
// uninterrupted compaction, and the reads still print the same.
// EVT_COMPACT_SEED=N repeats a run's kill instants.
func TestCompactionSIGKILL(t *testing.T) {
	kills, events := 40, 9000
	switch {
	case os.Getenv("EVT_TORTURE") == "full":
		kills, events = 200, 45000
	case testing.Short():
		kills = 10
	}
	if n, err := strconv.Atoi(os.Getenv("EVT_COMPACT_KILLS")); err == nil && n > 0 {
		kills = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EVT_COMPACT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("EVT_COMPACT_SEED=%q: %v", s, err)
		}
	}
	t.Logf("kill delays seeded with EVT_COMPACT_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))

	root := t.TempDir()
	orig := filepath.Join(root, "orig")
	start := time.Now()
	buildKillStore(t, orig, events)
	built := time.Since(start)
	origFiles := segmentFiles(t, orig)
	if out := evtMust(t, "--dir", orig, "verify"); !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("evt verify of the new store: %q", out)
	}
	wantReplay := evtMust(t, "--dir", orig, "replay", "-o", "json")
	wantStreams := evtMust(t, "--dir", orig, "streams", "-o", "json")

	// check compares what evt prints on dir with the store before any
	// compaction.
	check := func(dir, when string) {
		t.Helper()
		if out, err := evtRun(t, "--dir", dir, "verify"); err != nil || !strings.HasPrefix(out, "ok: ") {
			t.Fatalf("%s: evt verify: %q %v", when, out, err)
		}
		if got := evtMust(t, "--dir", dir, "replay", "-o", "json"); got != wantReplay {
			t.Fatalf("%s: evt replay -o json differs: %s", when, firstDiff(got, wantReplay))
		}
		if got := evtMust(t, "--dir", dir, "streams", "-o", "json"); got != wantStreams {
			t.Fatalf("%s: evt streams -o json differs: %s", when, firstDiff(got, wantStreams))
		}
	}

	// An uninterrupted compaction: how long it takes, what it leaves.
	ref := filepath.Join(root, "ref")
	copyDir(t, orig, ref)
	start = time.Now()
	report := evtMust(t, "--dir", ref, "compact", "-o", "json")
	times := []time.Duration{time.Since(start)}
	for n := range 2 { // two more, for a better figure
		dir := filepath.Join(root, fmt.Sprintf("timed-%d", n))
		copyDir(t, orig, dir)
		start := time.Now()
		evtMust(t, "--dir", dir, "compact")
		times = append(times, time.Since(start))
		os.RemoveAll(dir)
	}
	slices.Sort(times)
	whole := times[1] // the median
	var rep struct{ Rewritten, Removed int }
	if err := json.Unmarshal([]byte(report), &rep); err != nil {
		t.Fatalf("evt compact -o json printed %q: %v", report, err)
	}
	steps := rep.Rewritten + rep.Removed
	check(ref, "after an uninterrupted compaction")
	refFiles := segmentFiles(t, ref)
	var before, after int64
	for n, s := range origFiles {
		if strings.HasSuffix(n, ".seg") {
			before += s
		}
	}
	for n, s := range refFiles {
		if strings.HasSuffix(n, ".seg") {
			after += s
		}
	}
	t.Logf("store of %d events (%d readable, %d segments, %.1f MB) built in %v; an uninterrupted evt compact took %v (median of %v): %s",
		events, strings.Count(wantReplay, "\n"), len(origFiles)/2, float64(before)/1e6, built.Round(time.Millisecond), whole.Round(time.Millisecond), times, strings.TrimSpace(report))
	if after >= before || rep.Rewritten == 0 || rep.Removed == 0 {
		t.Fatalf("compaction left %d bytes of segments of %d, rewrote %d segments and removed %d: the store should give it all kinds of work", after, before, rep.Rewritten, rep.Removed)
	}

	// A third of the kills come after a random delay from the start,
	// between 0 and twice what an uninterrupted compaction takes: some
	// before it did anything, some after it finished. The others come when the
	// compaction has reached a random segment of those it changes: the
	// test watches the directory for segments removed and for the
	// .seg.compact and NAME.GEN.idx files of segments being rewritten,
	// and kills 0–3 ms after the chosen one shows up. How long a
	// compaction takes varies with the disk's fsyncs; its progress
	// does not.
	maxDelay := 2 * whole
	origSegs := map[string]bool{}
	for n := range origFiles {
		if strings.HasSuffix(n, ".seg") {
			origSegs[n] = true
		}
	}
	var finished, untouched, midway, withTemp, withGen, withTmp, allSwapped, byProgress int
	loop := time.Now()
	for k := range kills {
		dir := filepath.Join(root, fmt.Sprintf("kill-%d", k))
		copyDir(t, orig, dir)
		c := quickExit(selfCommand(t, "evt", "--dir", dir, "compact"))
		var errOut bytes.Buffer
		c.Stderr = &errOut
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		go func() { waited <- c.Wait() }()
		how := ""
		if k%3 == 0 {
			delay := time.Duration(rng.Int64N(int64(maxDelay) + 1))
			how = fmt.Sprintf("%v after the start", delay.Round(time.Microsecond))
			select {
			case <-time.After(delay):
			case err := <-waited:
				waited <- err
			}
		} else {
			target := 1 + rng.IntN(steps)
			extra := time.Duration(rng.Int64N(int64(3 * time.Millisecond)))
			how = fmt.Sprintf("%v after it reached changed segment %d of %d", extra.Round(time.Microsecond), target, steps)
			byProgress++
			seen := map[string]bool{}
		watch:
			for {
				select {
				case err := <-waited:
					waited <- err
					break watch
				default:
				}
				ents, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				present := 0
				for _, e := range ents {
					n := e.Name()
					if origSegs[n] {
						present++
					}
					if strings.HasSuffix(n, ".seg.compact") || strings.HasSuffix(n, ".idx") && strings.Count(n, ".") == 2 {
						seen[n[:20]] = true
					}
				}
				if len(seen)+len(origSegs)-present >= target {
					time.Sleep(extra)
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		c.Process.Signal(syscall.SIGKILL)
		err := <-waited
		var ee *exec.ExitError
		what := ""
		switch {
		case err == nil:
			finished++
			what = "after it finished"
		case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
			files := segmentFiles(t, dir)
			temp, gen := 0, 0
			for n := range files {
				if strings.HasSuffix(n, ".seg.compact") {
					temp++
				}
				if strings.HasSuffix(n, ".idx.tmp") {
					withTmp++
				}
				if strings.HasSuffix(n, ".idx") && strings.Count(n, ".") == 2 {
					gen++
				}
			}
			switch {
			case sameFiles(files, origFiles):
				untouched++
				what = "before it changed a file"
			case sameFiles(files, refFiles):
				allSwapped++
				what = "with every segment swapped"
			default:
				midway++
				what = fmt.Sprintf("mid-way (%d .seg.compact, %d NAME.GEN.idx)", temp, gen)
			}
			if temp > 0 {
				withTemp++
			}
			if gen > 0 {
				withGen++
			}
		default:
			t.Fatalf("evt compact: %v: %s", err, errOut.String())
		}
		when := fmt.Sprintf("kill %d, %s: %s", k, how, what)
		check(dir, when)
		evtMust(t, "--dir", dir, "compact")
		check(dir, when+", then a whole evt compact")
		if files := segmentFiles(t, dir); !sameFiles(files, refFiles) {
			var diff []string
			for n, s := range files {
				if r, ok := refFiles[n]; !ok || r != s {
					diff = append(diff, fmt.Sprintf("%s: %d bytes, uninterrupted %d", n, s, r))
				}
			}
			for n, r := range refFiles {
				if _, ok := files[n]; !ok {
					diff = append(diff, fmt.Sprintf("%s: missing, uninterrupted %d", n, r))
				}
			}
			slices.Sort(diff)
			t.Errorf("%s: the segment files differ from an uninterrupted compaction's: %v", when, diff[:min(len(diff), 10)])
		}
		os.RemoveAll(dir)
	}
	t.Logf("%d kills in %v (%d at 0–%v from the start, %d at a random segment of %d): %d before compaction changed a file, %d mid-way, %d with every segment swapped but before exit, %d after evt compact finished; %d left a .seg.compact file, %d NAME.GEN.idx files, %d an unfinished NAME.GEN.idx.tmp",
		kills, time.Since(loop).Round(time.Millisecond), kills-byProgress, maxDelay.Round(time.Millisecond), byProgress, steps, untouched, midway, allSwapped, finished, withTemp, withGen, withTmp)
}

// Compaction bugs the tests above ran into, each reproduced on its own
// (regression tests of the fixes).

// appendPadded appends n events of about 120 bytes each to stream in one
// evt append (one batch, so in one segment), after extra envelopes.
func appendPadded(t *testing.T, seg []string, stream string, n int, extra ...string) {
	t.Helper()
	var in strings.Builder
	for _, e := range extra {
		in.WriteString(e + "\n")
	}
	for range n {
		fmt.Fprintf(&in, `{"stream":%q,"type":"T","data":{"pad":%q}}`+"\n", stream, strings.Repeat("x", 90))
	}
	c := quickExit(selfCommand(t, "evt", append(seg, "append", "-q")...))
	c.Stdin = strings.NewReader(in.String())
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("evt append: %v: %s", err, out)
	}
}

// TestCompactMaxBytesKeepsRemoved: --max-bytes removes the oldest
// segments while the rest exceeds it, measured on the segment files as
// they are now. Compaction keeps each stream's newest record even in a
// segment that limit removed (so its versions survive), and shrinks the
// segments; the sizes then add up to less, the retained start moves back,
// and the kept record of a stream the limit had removed reads again:
// solo-1, which evt replay and evt streams did not show before evt
// compact, shows after it. An event a limit removed must never come back.
func TestCompactMaxBytesKeepsRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	seg := []string{"--dir", dir, "--segment-size", "4096"}
	appendPadded(t, seg, "acct-1", 30, `{"stream":"solo-1","type":"T","data":{}}`)
	for range 4 {
		appendPadded(t, seg, "acct-1", 30)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 5 {
		t.Fatalf("%d segments, want 5 (one per evt append)", len(segs))
	}
	var last2 int64
	for _, p := range segs[3:] {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		last2 += fi.Size()
	}
	// Only the last sealed segment and the active one are retained.
	evtMust(t, append(seg, "retention", "set", "--max-bytes", strconv.FormatInt(last2+1000, 10))...)
	replay := evtMust(t, append(seg, "replay", "-o", "json")...)
	streams := evtMust(t, append(seg, "streams")...)
	if strings.Contains(replay, "solo-1") || strings.Contains(streams, "solo-1") {
		t.Fatalf("solo-1 reads before compaction, though --max-bytes removed its segment:\n%s", streams)
	}
	evtMust(t, append(seg, "compact")...)
	if got := evtMust(t, append(seg, "replay", "-o", "json")...); got != replay {
		t.Errorf("evt replay after evt compact: %s", firstDiff(got, replay))
	}
	if got := evtMust(t, append(seg, "streams")...); got != streams {
		t.Errorf("evt streams after evt compact:\n%s\nbefore:\n%s", got, streams)
	}
}

// TestCompactRemovesEmptiedOldestSegments: a segment compaction rewrote
// to nothing (every record dropped) while an older segment still kept a
// record is never removed once it becomes the oldest: compactSegment
// returns early when it has nothing more to drop, with the segment's size
// as "kept", which also stops every later segment from being removed.
// Each such segment stays as a header-only file plus a full-size offsets
// file (16 bytes per position) for good: in a --until-acked queue, where
// segments empty out of order, the disk is never reclaimed.
func TestCompactRemovesEmptiedOldestSegments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	seg := []string{"--dir", dir, "--segment-size", "4096"}
	evtMust(t, append(seg, "append", "tmp-a", "T", "{}", "-q")...)
	evtMust(t, append(seg, "retention", "set", "tmp-*", "--max-count", "2")...)
	for range 3 {
		appendPadded(t, seg, "tmp-b", 30)
	}
	// tmp-a@1 is its stream's newest record: the first segment stays, and
	// the next two are rewritten empty.
	evtMust(t, append(seg, "compact")...)
	// Now tmp-a@1 goes: the first three segments hold nothing.
	evtMust(t, append(seg, "append", "tmp-a", "T", "{}", "-q")...)
	evtMust(t, append(seg, "append", "tmp-a", "T", "{}", "-q")...)
	evtMust(t, append(seg, "compact")...)
	evtMust(t, append(seg, "compact")...)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, p := range segs[:len(segs)-1] {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 64 {
			break
		}
		t.Errorf("%s: the log starts with a segment that holds nothing (%d bytes) after evt compact", filepath.Base(p), fi.Size())
	}
}
