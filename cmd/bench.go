package cmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/log"
)

type benchOptions struct {
	Events  int
	Size    int
	Streams int
	Ops     int
	Batch   int // events per append in bulk; 0: all of them (locally), natsBenchBatch (nats)
	Only    []string
}

// natsBenchBatch is bulk's events per append on a nats store when --batch
// is not given: the server's default atomic-batch limit (CLI.md "Stores":
// a larger append is refused).
const natsBenchBatch = 1000

// benchWorkloads in the order they run: the reads first, so that each of
// them sees exactly the bulk-loaded events, then the workloads that append
// one event at a time.
var benchWorkloads = []string{"bulk", "replay", "read", "fold", "consume", "proc", "tail"}

// Bounds of --size: the data must hold {"amount":N,"note":""}, and must
// fit on a command line (proc passes it as an argument; Linux limits one
// argument to 128 KiB).
const (
	benchMinSize = 32
	benchMaxSize = 64 << 10
)

func newBenchCmd(g *globalOptions) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure evt on this machine: appends, reads, folds, tail latency",
		Long: `Measure evt on this machine, through the code of the commands themselves,
and print one row per workload:

  bulk      evt append < events.ndjson: --events envelopes as one batch
  replay    evt replay > /dev/null: every event as NDJSON
  read      evt replay STREAM: open the store and read one whole stream
            (--events / --streams events), --ops times
  fold      evt fold 'account-*': the default merge reducer, every stream
  consume   evt consume NAME --once: one member printing and acking every event
  proc      evt append STREAM TYPE DATA, one new evt process each, --ops times
  tail      evt tail -f: from an append returning to the follower printing
            the event, --ops times

The events are --size bytes of JSON data spread over --streams streams
(account-1, account-2, ...). Columns: events, seconds, events per second,
MB/s (10^6 bytes of the NDJSON read or printed, where there is some) and,
for the workloads timed one operation at a time (read, proc, tail), the
p50, p90 and p99 of one operation in milliseconds. --sync applies as it
does to append. --only picks workloads; those that read load the store
first, untimed, when bulk is not among them.

The store is a temporary directory under $TMPDIR, removed afterwards. With
--dir DIR on the command line (EVT_DIR and the config file's dir are
ignored, so bench never writes into your store) the store is made in DIR,
which must be new or empty, and is left there. A store on tmpfs measures
memory, not a disk: bench says so.

With --store nats://HOST:PORT/NAME on the command line bench measures a
NATS JetStream store instead: the stream NAME must be new or empty, and
is left there (remove it with nats stream rm NAME, and its groups' bucket
EVT_NAME_META). bulk then appends --batch events at a time (default
1000, the server's default atomic-batch limit), and proc runs evt
--store ... append.`,
		Example: `  evt bench --events 2000 --only bulk,replay
  evt bench --events 5000 --ops 20 -o json
  evt bench --dir bench-store --events 2000 --size 1000 --sync none \
      --only bulk,read
  evt bench --store nats://127.0.0.1:4222/BENCH --events 20000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if g.remote != "" {
				if g.Source("store") != sourceFlag {
					return usageErrorf("bench measures a nats store only when --store names it on the command line (a new or empty stream), never the store of EVT_STORE or the config file")
				}
				return runBench(cmd.Context(), g, o, "")
			}
			dir := ""
			if g.Source("dir") == sourceFlag {
				dir = g.StoreDir()
			}
			return runBench(cmd.Context(), g, o, dir)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Events, "events", 100000, "events to append in bulk and read back")
	fl.IntVar(&o.Size, "size", 200, "bytes of JSON data per event")
	fl.IntVar(&o.Streams, "streams", 1000, "streams the events are spread over (at most --events)")
	fl.IntVar(&o.Ops, "ops", 200, "operations of the workloads timed one at a time: reads, processes, followed appends")
	fl.IntVar(&o.Batch, "batch", 0, "events per append in bulk (default: all in one locally, 1000 on a nats store)")
	fl.StringSliceVar(&o.Only, "only", nil, "run only these workloads: "+strings.Join(benchWorkloads, ","))
	_ = cmd.RegisterFlagCompletionFunc("only", cobra.FixedCompletions(benchWorkloads, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (o *benchOptions) validate() error {
	switch {
	case o.Events < 1:
		return usageErrorf("--events must be at least 1")
	case o.Size < benchMinSize || o.Size > benchMaxSize:
		return usageErrorf("--size: want %d to %d bytes, not %d", benchMinSize, benchMaxSize, o.Size)
	case o.Streams < 1:
		return usageErrorf("--streams must be at least 1")
	case o.Ops < 1:
		return usageErrorf("--ops must be at least 1")
	case o.Batch < 0:
		return usageErrorf("--batch must be at least 1")
	}
	for _, w := range o.Only {
		if !slices.Contains(benchWorkloads, w) {
			return usageErrorf("--only: unknown workload %q (want %s)", w, orList(benchWorkloads))
		}
	}
	o.Streams = min(o.Streams, o.Events)
	return nil
}

// runBench runs the workloads on a store in dir, or in a temporary
// directory when dir is "", and prints a row for each as it finishes.
func runBench(ctx context.Context, g *globalOptions, o *benchOptions, dir string) error {
	p, err := g.printer()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "evt-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if g.remote != "" {
		if err := benchStoreUsable(g); err != nil {
			return err
		}
		if o.Batch == 0 {
			o.Batch = natsBenchBatch
		}
	} else {
		if dir == "" {
			dir = filepath.Join(work, "store")
		} else if err := benchDirUsable(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		noteTmpfs(g.IO, dir)
	}

	b := &bench{g: g, o: o, dir: dir, work: work, data: benchData(nil, 0, o.Size)}
	for _, w := range benchWorkloads {
		if len(o.Only) > 0 && !slices.Contains(o.Only, w) {
			continue
		}
		bar := newCountProgress(g.IO, "bench "+w, "ops")
		if w == "bulk" {
			bar = newProgress(g.IO, "bench "+w) // bytes of input read
		}
		r, err := b.run(ctx, w, bar)
		bar.done()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("bench %s: %w", w, err)
		}
		if err := p.Row(r.fields()); err != nil {
			return err
		}
		if !p.Tabular() {
			// A table needs every row for its widths; lines can go now.
			if err := p.Flushed(); err != nil {
				return err
			}
		}
	}
	return p.Flush()
}

// benchDirUsable refuses a --dir that holds anything: bench must never
// add events to a store someone uses, nor mix its files with others.
func benchDirUsable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return usageErrorf("--dir %s is not empty: bench makes its store only in a new or empty directory", dir)
	}
	return nil
}

// benchStoreUsable refuses a nats store that holds events, as
// benchDirUsable refuses a directory that holds files.
func benchStoreUsable(g *globalOptions) error {
	s, err := g.openStore(false)
	if errors.Is(err, log.ErrNoStore) {
		return nil
	}
	if err != nil {
		return err
	}
	defer s.Close()
	_, next, err := s.Bounds()
	if err != nil {
		return err
	}
	if next > 1 {
		return usageErrorf("--store %s is not empty: bench makes its store only in a new or empty stream (name one: nats://HOST:PORT/NAME)", g.remote)
	}
	return nil
}

// noteTmpfs says when the store is in memory: fsync costs nothing there,
// so append figures would flatter any disk.
func noteTmpfs(ios *IOStreams, dir string) {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC {
		fmt.Fprintf(ios.ErrOut, "evt: note: %s is on tmpfs (memory), where fsync costs nothing; --dir DIR measures a disk\n", dir)
	}
}

// benchResult is what one workload measured.
type benchResult struct {
	workload string
	events   int
	bytes    int64           // NDJSON read or printed; 0 where there is none
	elapsed  time.Duration   // the timed part only
	ops      []time.Duration // each operation, for workloads timed one at a time
	noRate   bool            // events/s means nothing (tail waits between events on purpose)
}

// fields is the result as a row: numbers rounded to what a clock on a
// busy machine can tell, null (a blank cell) where a figure means nothing.
func (r benchResult) fields() []output.Field {
	secs := r.elapsed.Seconds()
	figure := func(key string, v float64, format string, ok bool) output.Field {
		if !ok || secs <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return output.Field{Key: key}
		}
		text := fmt.Sprintf(format, v)
		rounded, _ := strconv.ParseFloat(text, 64) // the JSON value is what the table shows
		return output.Field{Key: key, Value: rounded, Text: text}
	}
	fields := []output.Field{
		{Key: "workload", Value: r.workload},
		{Key: "events", Value: r.events},
		figure("seconds", secs, "%.3f", true),
		figure("events_per_s", float64(r.events)/secs, "%.0f", !r.noRate),
		figure("mb_per_s", float64(r.bytes)/1e6/secs, "%.1f", r.bytes > 0),
	}
	sorted := slices.Clone(r.ops)
	slices.Sort(sorted)
	for _, q := range []struct {
		key string
		q   float64
	}{{"p50_ms", 0.50}, {"p90_ms", 0.90}, {"p99_ms", 0.99}} {
		ms := math.NaN()
		if len(sorted) > 0 {
			ms = float64(percentile(sorted, q.q)) / float64(time.Millisecond)
		}
		fields = append(fields, figure(q.key, ms, "%.3f", true))
	}
	return fields
}

// percentile is the nearest-rank q-quantile of sorted, which is not empty.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
