package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/evtdev/evt/fold"
	"github.com/evtdev/evt/log"
)

// The workloads of evt bench. Each runs the run function of its command
// (runAppend, runReplay, runFold, runConsume, runTail) in this process, or
// the evt binary itself (proc), so that what is timed is the code a user
// runs, not a copy of it.

// bench is one run of evt bench.
type bench struct {
	g      *globalOptions
	o      *benchOptions
	dir    string // the store directory; "" for a nats store (g.remote)
	work   string // scratch space: the generated input
	data   []byte // the data of a single event (proc, tail)
	loaded bool   // the store holds the --events events
}

// benchCategory is the category of the generated streams.
const benchCategory = "account"

// tailWarmup events are appended and followed before tail's timed ones:
// the first wakes a follower that is still setting up its watch.
const tailWarmup = 2

func (b *bench) run(ctx context.Context, workload string, bar *progress) (benchResult, error) {
	if workload != "bulk" && workload != "proc" && workload != "tail" && !b.loaded {
		// A reading workload without bulk: load the store, untimed.
		loading := newProgress(b.g.IO, "bench loading the store")
		_, err := b.load(ctx, loading)
		loading.done()
		if err != nil {
			return benchResult{}, err
		}
	}
	switch workload {
	case "bulk":
		return b.load(ctx, bar)
	case "replay":
		return b.replay(ctx, bar)
	case "read":
		return b.read(ctx, bar)
	case "fold":
		return b.fold(ctx)
	case "consume":
		return b.consume(ctx, bar)
	case "proc":
		return b.proc(ctx, bar)
	case "tail":
		return b.tail(ctx, bar)
	}
	return benchResult{}, fmt.Errorf("unknown workload %q", workload)
}

// options are the global options a workload's command runs with: this
// store, the bench's --sync, automatic output to out (never a terminal,
// so events print as NDJSON, as into a pipe), and no --jq.
func (b *bench) options(in io.Reader, out io.Writer) *globalOptions {
	return &globalOptions{
		IO:          &IOStreams{In: in, Out: out, ErrOut: b.g.IO.ErrOut},
		Dir:         b.dir,
		Sync:        b.g.Sync,
		LockTimeout: b.g.LockTimeout,
		SegmentSize: b.g.SegmentSize,
		Store:       b.g.Store,
		Nats:        b.g.Nats,
		remote:      b.g.remote,
	}
}

// benchData appends the data of event i: a JSON object of exactly size
// bytes (at least benchMinSize), {"amount":N,"note":"xx..."}.
func benchData(dst []byte, i, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"amount":`...)
	dst = strconv.AppendInt(dst, int64(i%10000), 10)
	dst = append(dst, `,"note":"`...)
	for len(dst)-start < size-2 {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

func benchStream(i int) string { return benchCategory + "-" + strconv.Itoa(i+1) }

// writeInput writes the bulk input: --events envelopes, one a line, event
// i in stream i mod --streams.
func (b *bench) writeInput(path string, bar *progress) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	line := make([]byte, 0, b.o.Size+64)
	var size int64
	for i := range b.o.Events {
		line = append(line[:0], `{"stream":"`...)
		line = append(line, benchStream(i%b.o.Streams)...)
		line = append(line, `","type":"Deposited","data":`...)
		line = benchData(line, i, b.o.Size)
		line = append(line, "}\n"...)
		if _, err := w.Write(line); err != nil {
			return 0, err
		}
		size += int64(len(line))
		if i%4096 == 0 {
			bar.update(int64(i), int64(b.o.Events))
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return size, f.Close()
}

// load is the bulk workload: `evt append < events.ndjson`, with the file
// on stdin, so append takes its streaming path as it does from a shell.
func (b *bench) load(ctx context.Context, bar *progress) (benchResult, error) {
	path := filepath.Join(b.work, "events.ndjson")
	gen := newCountProgress(b.g.IO, "bench generating input", "events")
	size, err := b.writeInput(path, gen)
	gen.done()
	if err != nil {
		return benchResult{}, err
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return benchResult{}, err
	}
	defer f.Close()
	stop := showReadProgress(b.g.IO, bar, f, size)
	start := time.Now()
	if b.o.Batch == 0 || b.o.Batch >= b.o.Events {
		err = runAppend(ctx, b.options(f, io.Discard), &appendOptions{Expect: "any", Quiet: true}, nil)
	} else {
		err = b.appendChunks(ctx, f)
	}
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return benchResult{}, err
	}
	b.loaded = true
	return benchResult{workload: "bulk", events: b.o.Events, bytes: size, elapsed: elapsed}, nil
}

// appendChunks appends the input --batch lines at a time, one `evt
// append` each, as a loop over a split file would; the lines are read
// between the appends, as append reads its stdin. The appends share one
// open store: on a nats store one connection, as nats bench has, rather
// than a connect and a stream look-up per chunk, which a busy machine
// makes cost more than the chunk's append.
func (b *bench) appendChunks(ctx context.Context, f *os.File) error {
	s, err := b.options(nil, nil).openStore(true)
	if err != nil {
		return err
	}
	defer s.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var chunk []byte
	for {
		chunk = chunk[:0]
		n := 0
		for n < b.o.Batch {
			line, err := r.ReadSlice('\n')
			chunk = append(chunk, line...)
			if err == bufio.ErrBufferFull {
				continue // a line longer than the buffer: the rest follows
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			n++
		}
		if len(chunk) == 0 {
			return nil
		}
		opts := b.options(bytes.NewReader(chunk), io.Discard)
		opts.kept = s
		if err := runAppend(ctx, opts, &appendOptions{Expect: "any", Quiet: true}, nil); err != nil {
			return err
		}
	}
}

// showReadProgress draws how far append has read f, as that is how far
// the streaming append has got; the returned function stops it. The
// offset is read with a seek, which does not disturb the reader.
func showReadProgress(ios *IOStreams, bar *progress, f *os.File, size int64) (stop func()) {
	if !ios.IsStderrTTY() {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if off, err := f.Seek(0, io.SeekCurrent); err == nil {
					bar.update(min(off, size), size)
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// benchOutput stands for a command's stdout: it counts the bytes and the
// lines (one event or row a line) printed, and moves the progress bar.
type benchOutput struct {
	bytes int64
	lines int
	bar   *progress
	total int // the lines expected, for the bar
}

func (w *benchOutput) Write(p []byte) (int, error) {
	w.bytes += int64(len(p))
	w.lines += bytes.Count(p, []byte{'\n'})
	if w.bar != nil {
		w.bar.update(int64(min(w.lines, w.total)), int64(w.total))
	}
	return len(p), nil
}

// tailOutput stands for a follower's stdout. For each event printed it
// sends how long after its "time" it was printed: the store stamps that
// when the append begins, so the wait covers the write, the fsync, the
// follower's wake-up, its read and its print, as tailcheck's stamps do
// for tail -f (../shared/bench).
type tailOutput struct {
	partial []byte
	waits   chan time.Duration
}

func (w *tailOutput) Write(p []byte) (int, error) {
	now := time.Now()
	w.partial = append(w.partial, p...)
	for {
		line, rest, ok := bytes.Cut(w.partial, []byte{'\n'})
		if !ok {
			break
		}
		var ev struct {
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return 0, fmt.Errorf("follower printed %q: %w", line, err)
		}
		w.waits <- max(0, now.Sub(ev.Time))
		w.partial = append(w.partial[:0], rest...)
	}
	return len(p), nil
}

func everyStream() eventFilter {
	f, _ := newEventFilter("", nil) // cannot fail: "" is every stream
	return f
}

// replay: `evt replay > /dev/null`.
func (b *bench) replay(ctx context.Context, bar *progress) (benchResult, error) {
	out := &benchOutput{bar: bar, total: b.o.Events}
	start := time.Now()
	err := runReplay(ctx, b.options(nil, out), &replayOptions{From: "start", To: "end"}, everyStream())
	elapsed := time.Since(start)
	return benchResult{workload: "replay", events: out.lines, bytes: out.bytes, elapsed: elapsed}, err
}

// read: `evt replay account-K` --ops times, K going round the streams;
// each opens the store, as a new process would.
func (b *bench) read(ctx context.Context, bar *progress) (benchResult, error) {
	out := &benchOutput{}
	opts := b.options(nil, out)
	r := benchResult{workload: "read"}
	for i := range b.o.Ops {
		f, err := newEventFilter(benchStream(i%b.o.Streams), nil)
		if err != nil {
			return r, err
		}
		start := time.Now()
		if err := runReplay(ctx, opts, &replayOptions{From: "start", To: "end"}, f); err != nil {
			return r, err
		}
		took := time.Since(start)
		r.ops = append(r.ops, took)
		r.elapsed += took
		bar.update(int64(i+1), int64(b.o.Ops))
	}
	r.events, r.bytes = out.lines, out.bytes
	return r, nil
}

// fold: `evt fold 'account-*'` with the default reducer.
func (b *bench) fold(ctx context.Context) (benchResult, error) {
	f, err := newEventFilter(benchCategory+"-*", nil)
	if err != nil {
		return benchResult{}, err
	}
	start := time.Now()
	err = runFold(ctx, b.options(nil, io.Discard), &foldOptions{}, f, fold.NewMerge())
	elapsed := time.Since(start)
	// Every event of the store is in the category: proc and tail, which
	// add more, run later.
	return benchResult{workload: "fold", events: b.o.Events, elapsed: elapsed}, err
}

// consume: a group over the category from the start, and `evt consume
// NAME --once` printing and acking all of it as one member.
func (b *bench) consume(ctx context.Context, bar *progress) (benchResult, error) {
	f, err := newEventFilter(benchCategory+"-*", nil)
	if err != nil {
		return benchResult{}, err
	}
	s, err := b.options(nil, nil).openStore(false)
	if err != nil {
		return benchResult{}, err
	}
	first, _, err := s.Bounds()
	if err == nil {
		// The defaults of evt group create.
		err = s.CreateGroup(context.Background(), log.GroupConfig{Name: "bench", Selection: f.sel.String(), AckWait: 30 * time.Second,
			MaxDeliver: 5, Ordering: "stream", Created: time.Now().UTC()}, first)
	}
	s.Close()
	if err != nil {
		return benchResult{}, err
	}
	out := &benchOutput{bar: bar, total: b.o.Events}
	start := time.Now()
	err = runConsume(ctx, b.options(nil, out), &consumeOptions{Once: true}, "bench")
	elapsed := time.Since(start)
	return benchResult{workload: "consume", events: out.lines, bytes: out.bytes, elapsed: elapsed}, err
}

// proc: `evt append account-1 Deposited DATA -q` as a new process, --ops
// times one after the other, as a shell loop would.
func (b *bench) proc(ctx context.Context, bar *progress) (benchResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return benchResult{}, err
	}
	args := []string{"evt", "--dir", b.dir, "--sync", b.g.Sync, "--segment-size", strconv.FormatInt(b.g.SegmentSize, 10)}
	if b.g.remote != "" {
		// What a user runs: evt, which hands the command to evt-nats.
		// This process is evt-nats then; the evt beside it is that evt.
		if p := filepath.Join(filepath.Dir(exe), "evt"); isFile(p) {
			exe = p
		}
		args = append([]string{"evt", "--store", b.g.remote}, b.natsArgs()...)
	}
	args = append(args, "append", benchStream(0), "Deposited", string(b.data), "-q")
	r := benchResult{workload: "proc"}
	for i := range b.o.Ops {
		c := exec.CommandContext(ctx, exe)
		c.Args = args // argv[0] "evt": what a shell gives it (and what tells a test binary to act as evt)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		start := time.Now()
		err := c.Run()
		took := time.Since(start)
		if err != nil {
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				return r, fmt.Errorf("%w: %s", err, strings.TrimPrefix(msg, "evt: "))
			}
			return r, err
		}
		r.ops = append(r.ops, took)
		r.elapsed += took
		r.events++
		bar.update(int64(i+1), int64(b.o.Ops))
	}
	return r, nil
}

// natsArgs are the nats-* settings of this bench, as flags for proc.
func (b *bench) natsArgs() []string {
	n := b.g.Nats
	args := []string{"--nats-timeout", n.Timeout.String(), "--nats-replicas", strconv.Itoa(n.Replicas), "--nats-id-lookback", n.IDLookback}
	if n.Creds != "" {
		args = append(args, "--nats-creds", n.Creds)
	}
	if n.Context != "" {
		args = append(args, "--nats-context", n.Context)
	}
	return args
}

// tail: a follower, `evt tail -f` from the end of the log, while --ops
// events are appended one at a time (`evt append`, in this process); each
// is timed from the store stamping it to the follower printing it.
func (b *bench) tail(ctx context.Context, bar *progress) (benchResult, error) {
	r := benchResult{workload: "tail", noRate: true}
	s, err := b.options(nil, nil).openStore(true) // the follower needs a store
	if err != nil {
		return r, err
	}
	_, next, err := s.Bounds()
	s.Close()
	if err != nil {
		return r, err
	}
	n := tailWarmup + b.o.Ops
	out := &tailOutput{waits: make(chan time.Duration, n)}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runTail(tctx, b.options(nil, out), &tailOptions{From: strconv.FormatUint(next, 10), Follow: true, Count: uint64(n)}, everyStream())
	}()
	stop := func(err error) (benchResult, error) {
		cancel()
		<-done
		return r, err
	}
	appendOpts := b.options(nil, io.Discard)
	start := time.Now()
	for i := range n {
		if err := runAppend(ctx, appendOpts, &appendOptions{Expect: "any", Quiet: true}, []string{benchStream(0), "Deposited", string(b.data)}); err != nil {
			return stop(err)
		}
		// The follower sends each wait before it returns, so once it is
		// done every wait it measured is in the channel: after its last
		// event (--count reached) both cases can be ready at once.
		select {
		case wait := <-out.waits:
			if i >= tailWarmup {
				r.ops = append(r.ops, wait)
				r.events++
			}
		case err := <-done:
			var wait time.Duration
			got := false
			select {
			case wait = <-out.waits:
				got = true
			default:
			}
			switch {
			case err != nil:
				return r, err
			case !got || i != n-1:
				return r, errors.New("the follower stopped early")
			}
			if i >= tailWarmup {
				r.ops = append(r.ops, wait)
				r.events++
			}
			r.elapsed = time.Since(start)
			return r, nil
		case <-time.After(10 * time.Second):
			return stop(errors.New("the follower printed nothing for 10s after an append"))
		case <-ctx.Done():
			return stop(ctx.Err())
		}
		bar.update(int64(i+1), int64(n))
		// One event at a time, as a shell loop appends: the follower is
		// back waiting before the next one.
		time.Sleep(time.Millisecond)
	}
	r.elapsed = time.Since(start)
	return r, <-done
}
