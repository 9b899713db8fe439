package cmd

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

type statsOptions struct {
	Top   int
	ASCII bool
	Types []string
}

func newStatsCmd(g *globalOptions) *cobra.Command {
	o := &statsOptions{}
	cmd := &cobra.Command{
		Use:   "stats [SELECTION]",
		Short: "Summarize the store: counts, sizes, top types and streams, append rate",
		Long: `Read the events of a selection (every stream by default) and summarize
them: how many events and streams, their bytes, the first and last
position, the oldest and newest event, the most frequent event types and
the streams with the most events (--top rows each, 0 for all), and the
append rate over time: events per time bucket, the bucket width chosen
from the span so that there are at most 60 buckets.

bytes and segments are those of the whole store: every file of the
store directory and its segment files, or on a nats store the bytes the
server stores for the JetStream stream, and no segments ("-" on a
terminal, empty piped, null in JSON: the server keeps its own files);
event_bytes is the size of the selected events' records.

On a terminal the figures print as "key: value" lines, the tops as tables
and the rate as a bar chart, drawn with Unicode blocks when the locale
(LC_ALL, LC_CTYPE or LANG) is UTF-8 and with ASCII otherwise or with
--ascii. Piped, every figure is a tab-separated row: "KEY VALUE",
"type NAME EVENTS", "stream NAME EVENTS" and "rate BUCKET-START EVENTS".
-o json prints one object with every figure, the rate as
{"start","bucket_seconds","events":[N,...]}. -o prometheus prints the
figures as metrics in Prometheus's text format, labelled
selection="SELECTION": evt_events, evt_streams, evt_event_bytes,
evt_store_bytes, evt_store_segments (not on a nats store), evt_last_position,
evt_last_append_timestamp_seconds, evt_first_append_timestamp_seconds.

stats reads the whole selection once (one stream: only that stream), and
shows a progress bar on stderr when stderr is a terminal. It never
changes the store.`,
		Example: `  evt stats
  evt stats 'order-*' --top 3
  evt stats --type Deposited --ascii
  evt stats -o json --jq .rate.events`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := newEventFilter(optionalArg(args), o.Types)
			if err != nil {
				return err
			}
			if o.Top < 0 {
				return usageErrorf("--top: want a number of rows (0 for all), not %d", o.Top)
			}
			return runStats(cmd.Context(), g, o, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Top, "top", 10, "rows in the top types and top streams tables (0: all)")
	fl.BoolVar(&o.ASCII, "ascii", false, "draw the rate chart with ASCII characters, whatever the locale")
	fl.StringArrayVar(&o.Types, "type", nil, "only events of this type (repeatable)")
	return cmd
}

// optionalArg is the one optional argument of a command (a SELECTION),
// or "".
func optionalArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// storeStats is what evt stats found.
type storeStats struct {
	selection      string
	events         uint64
	eventBytes     uint64
	bytes          int64  // every file of the store directory, or what the server stores
	segments       int    // -1: the store has none (nats)
	first, last    uint64 // positions of the first and last selected event
	oldest, newest int64  // times of the first and last selected event
	types, streams tally
	rate           rateHistogram
}

func runStats(ctx context.Context, g *globalOptions, o *statsOptions, f eventFilter) error {
	p, err := g.metricsPrinter()
	if err != nil {
		return err
	}
	s, err := g.openStore(false)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := collectStats(ctx, g.IO, s, f)
	if err != nil {
		return err
	}
	switch {
	case p.Format() == output.FormatPrometheus:
		return output.WriteMetrics(g.IO.Out, statsMetrics(st))
	case p.Tabular():
		return printStatsTerminal(g, st, o)
	case p.Format() == output.FormatAuto && g.JQ == "":
		return printStatsRows(p, st, o.Top)
	}
	fields := append(st.summary(),
		output.Field{Key: "top_types", Value: st.types.top(o.Top, "type")},
		output.Field{Key: "top_streams", Value: st.streams.top(o.Top, "stream")},
		output.Field{Key: "rate", Value: st.rate.buckets(maxRateBuckets).document()},
	)
	if err := p.Row(fields); err != nil {
		return err
	}
	return p.Flush()
}

// collectStats reads the selected events once, and sizes up the store
// directory.
func collectStats(ctx context.Context, ios *IOStreams, s log.Store, f eventFilter) (*storeStats, error) {
	st := &storeStats{selection: f.sel.String()}
	first, next, err := s.Bounds()
	if err != nil {
		return nil, err
	}
	bar := newCountProgress(ios, "stats", "events")
	r := &eventReader{s: s, f: f, ios: ios}
	err = r.readFrom(codec.Cursor{Kind: codec.CursorStart}, func(rec *codec.Record) error {
		if st.events == 0 {
			st.first, st.oldest = rec.Position, rec.Time
		}
		st.events++
		st.eventBytes += uint64(rec.Size)
		st.last, st.newest = rec.Position, rec.Time
		st.types.add(rec.Type)
		st.streams.add(rec.Stream)
		st.rate.add(rec.Time)
		if st.events%(1<<16) == 0 {
			bar.update(int64(rec.Position-first), int64(next-first))
			return ctx.Err()
		}
		return nil
	})
	bar.done()
	if err != nil {
		return nil, err
	}
	st.segments = -1
	if z, ok := s.(log.Sizer); ok {
		size, err := z.Size()
		if err != nil {
			return nil, err
		}
		st.bytes, st.segments = size.Bytes, size.Segments
	}
	return st, nil
}

// summary is the figures of st as fields, in the order every format
// prints them.
func (st *storeStats) summary() []output.Field {
	return []output.Field{
		{Key: "selection", Value: st.selection},
		{Key: "events", Value: st.events},
		{Key: "streams", Value: len(st.streams.names)},
		{Key: "event_bytes", Value: st.eventBytes, Text: humanBytes(int64(st.eventBytes))},
		{Key: "bytes", Value: uint64(st.bytes), Text: humanBytes(st.bytes)},
		st.segmentsField(),
		{Key: "first_position", Value: st.first},
		{Key: "last_position", Value: st.last},
		{Key: "oldest", Value: st.eventTime(st.oldest)},
		{Key: "newest", Value: st.eventTime(st.newest)},
	}
}

// segmentsField is the count of segment files, or null in JSON and "-"
// in text for a store that has none (a nats server keeps its own files).
func (st *storeStats) segmentsField() output.Field {
	if st.segments < 0 {
		return output.Field{Key: "segments", Value: nil, Text: "-"}
	}
	return output.Field{Key: "segments", Value: st.segments}
}

// eventTime is the time t of an event, or the zero time (printed as null
// or "-") when nothing was selected.
func (st *storeStats) eventTime(t int64) time.Time {
	if st.events == 0 {
		return time.Time{}
	}
	return time.Unix(0, t).UTC()
}

// printStatsTerminal prints st for a person: "key: value" lines, the top
// tables, and the rate chart.
func printStatsTerminal(g *globalOptions, st *storeStats, o *statsOptions) error {
	out := g.IO.Out
	for _, f := range st.summary() {
		text := f.Text
		if text == "" {
			text = fmt.Sprint(f.Value)
			if t, ok := f.Value.(time.Time); ok {
				text = "-"
				if !t.IsZero() {
					text = t.Format(codec.TimeFormat)
				}
			}
		}
		if _, err := fmt.Fprintf(out, "%-15s %s\n", f.Key+":", text); err != nil {
			return err
		}
	}
	if st.events == 0 {
		return nil
	}
	for _, tab := range []struct {
		t    *tally
		what string
	}{{&st.types, "type"}, {&st.streams, "stream"}} {
		p, err := g.printer() // a printer per table: each has its header
		if err != nil {
			return err
		}
		fmt.Fprintln(out)
		for _, c := range tab.t.top(o.Top, tab.what) {
			err := p.Row([]output.Field{
				{Key: tab.what, Value: c.Name},
				{Key: "events", Value: c.Events},
				{Key: "share", Value: fmt.Sprintf("%.1f%%", 100*float64(c.Events)/float64(st.events))},
			})
			if err != nil {
				return err
			}
		}
		if err := p.Flush(); err != nil {
			return err
		}
	}
	if st.oldest == st.newest {
		// One column of one height says nothing about a rate.
		what := fmt.Sprintf("all %d events were", st.events)
		if st.events == 1 {
			what = "the one event was"
		}
		_, err := fmt.Fprintf(out, "\n%s appended at %s: no rate to chart\n", what, time.Unix(0, st.oldest).UTC().Format(codec.TimeFormat))
		return err
	}
	// The chart grows with the terminal: a column a bucket, beside the
	// peak's label and the axis.
	width := min(maxChartBuckets, g.IO.TerminalWidth()-20)
	chart := renderRateChart(st.rate.buckets(max(width, 10)), rateChartHeight,
		o.ASCII || !localeIsUTF8(os.Getenv), g.IO.ColorEnabled())
	_, err := fmt.Fprint(out, "\n"+chart)
	return err
}

// printStatsRows prints st as tab-separated rows for scripts: the figures
// as "KEY VALUE", then "type NAME EVENTS", "stream NAME EVENTS" and "rate
// START EVENTS" rows.
func printStatsRows(p *output.Printer, st *storeStats, top int) error {
	b := st.rate.buckets(maxRateBuckets)
	rows := [][]output.Field{}
	for _, f := range st.summary() {
		rows = append(rows, []output.Field{{Key: "key", Value: f.Key}, {Key: "value", Value: f.Value}})
	}
	rows = append(rows, []output.Field{{Key: "key", Value: "bucket_seconds"}, {Key: "value", Value: b.seconds()}})
	for _, what := range []struct {
		t    *tally
		name string
	}{{&st.types, "type"}, {&st.streams, "stream"}} {
		for _, c := range what.t.top(top, what.name) {
			rows = append(rows, []output.Field{{Key: "key", Value: what.name}, {Key: "name", Value: c.Name}, {Key: "events", Value: c.Events}})
		}
	}
	for i, n := range b.counts {
		start := time.Unix(0, b.start+int64(i)*b.width).UTC()
		rows = append(rows, []output.Field{{Key: "key", Value: "rate"}, {Key: "start", Value: start}, {Key: "events", Value: n}})
	}
	for _, row := range rows {
		if err := p.Row(row); err != nil {
			return err
		}
	}
	return p.Flush()
}

// tally counts names (event types, streams): one map lookup per event,
// and an allocation only for a name's first occurrence.
type tally struct {
	index  map[string]int
	names  []string
	counts []uint64
}

func (t *tally) add(name []byte) {
	i, ok := t.index[string(name)]
	if !ok {
		if t.index == nil {
			t.index = map[string]int{}
		}
		i = len(t.names)
		t.names = append(t.names, string(name))
		t.counts = append(t.counts, 0)
		t.index[t.names[i]] = i
	}
	t.counts[i]++
}

// nameCount is one row of a top table; what names the Name column in
// JSON ("type" or "stream").
type nameCount struct {
	what   string
	Name   string
	Events uint64
}

// MarshalJSON writes {"type"|"stream": NAME, "events": N}.
func (c nameCount) MarshalJSON() ([]byte, error) {
	b := append(codec.AppendJSONString([]byte{'{'}, c.what), ':')
	b = codec.AppendJSONString(b, c.Name)
	b = append(b, `,"events":`...)
	b = strconv.AppendUint(b, c.Events, 10)
	return append(b, '}'), nil
}

// top returns the n most counted names (all when n is 0), most first,
// ties by name.
func (t *tally) top(n int, what string) []nameCount {
	order := make([]int, len(t.names))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		i, j := order[a], order[b]
		if t.counts[i] != t.counts[j] {
			return t.counts[i] > t.counts[j]
		}
		return t.names[i] < t.names[j]
	})
	if n > 0 && n < len(order) {
		order = order[:n]
	}
	out := make([]nameCount, len(order))
	for k, i := range order {
		out[k] = nameCount{what: what, Name: t.names[i], Events: t.counts[i]}
	}
	return out
}
