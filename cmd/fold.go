package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/cmd/specfile"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/fold"
	"github.com/evtdev/evt/log"
)

type foldOptions struct {
	Reduce     string
	Spec       string
	At         string
	Follow     bool
	Trace      bool
	NoSnapshot bool
	Poll       bool
}

// snapshotMin is how many events a fold must have read before it saves a
// snapshot: below it, folding again is as cheap as reading a snapshot.
const snapshotMin = 64

func newFoldCmd(g *globalOptions) *cobra.Command {
	o := &foldOptions{}
	cmd := &cobra.Command{
		Use:   "fold STREAM|SELECTION",
		Short: "Fold a stream's events into its current state",
		Long: `Left-fold each stream's events into its current state (event sourcing).

The default reducer is the JSON merge patch (RFC 7396) of every event's
data, in order. --reduce EXPR is a jq expression with . the state
(initially null) and $event the envelope; its result is the new state.
--spec FILE (YAML or JSON) gives an init state and a jq expression "on"
each event type, and optionally a "default" for the others; --spec NAME
picks a spec from the config file's "folds:" section.

One stream prints {"stream","version","state"}. A selection folds every
matching stream: a table on a terminal whose columns are the states'
top-level keys, NDJSON {"stream","version","state"} when piped.

--at N folds a stream only up to version N, --at @TIME up to that time
(time travel). --trace prints every event with the state after it. -f
prints the state again each time an event of the selection arrives.

Folding a long stream again starts from a snapshot of the state cached in
the store for this reducer (derived data: delete DIR/snapshots at will);
--no-snapshot folds from the first event.`,
		Example: `  evt fold account-7
  evt fold 'account-*' --reduce '(. // 0) + $event.data.amount'
  evt fold order-42 --spec order.yaml --at @2026-11-01
  evt fold account-7 --trace`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Reduce != "" && o.Spec != "" {
				return usageErrorf("--reduce and --spec exclude each other")
			}
			f, err := newEventFilter(args[0], nil)
			if err != nil {
				return err
			}
			r, err := g.reducer(o)
			if err != nil {
				return err
			}
			return runFold(cmd.Context(), g, o, f, r)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Reduce, "reduce", "", "jq expression: . is the state, $event the envelope")
	fl.StringVar(&o.Spec, "spec", "", "fold spec: a YAML/JSON file, or a name under folds: in the config file")
	fl.StringVar(&o.At, "at", "", "fold up to stream version N, or up to @TIME")
	fl.BoolVarP(&o.Follow, "follow", "f", false, "print the state again as new events arrive")
	fl.BoolVar(&o.Trace, "trace", false, "print each event and the state after it")
	fl.BoolVar(&o.NoSnapshot, "no-snapshot", false, "fold from the first event; neither read nor write snapshots")
	fl.BoolVar(&o.Poll, "poll", false, "with -f, poll the store instead of watching it")
	return cmd
}

// reducer builds the reducer the options ask for.
func (g *globalOptions) reducer(o *foldOptions) (fold.Reducer, error) {
	switch {
	case o.Reduce != "":
		r, err := fold.NewJQ(o.Reduce)
		if err != nil {
			return nil, usageErrorf("--reduce: %w", err)
		}
		return r, nil
	case o.Spec != "":
		b, err := os.ReadFile(o.Spec)
		if err == nil {
			spec, err := specfile.Parse(b)
			if err != nil {
				return nil, fmt.Errorf("spec %s: %w", o.Spec, err)
			}
			return spec.Reducer(), nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("spec: %w", err)
		}
		doc, err := g.configFold(o.Spec)
		if err != nil {
			return nil, err
		}
		spec, err := fold.NewSpec(doc)
		if err != nil {
			return nil, fmt.Errorf("spec %s in %s: %w", o.Spec, g.ConfigFileUsed(), err)
		}
		return spec.Reducer(), nil
	}
	return fold.NewMerge(), nil
}

// configFold reads folds.NAME from the config file. It parses the file
// itself: viper folds keys to lower case, and event types are
// case-sensitive.
func (g *globalOptions) configFold(name string) (any, error) {
	path := g.ConfigFileUsed()
	notFound := fmt.Errorf("--spec %s: no such file, and no fold of that name in the config file", name)
	if path == "" {
		return nil, notFound
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Folds map[string]any `yaml:"folds"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	doc, ok := cfg.Folds[name]
	if !ok {
		return nil, notFound
	}
	return doc, nil
}

// foldBound is how far --at lets a fold go.
type foldBound struct {
	version uint64 // 0: no version bound
	before  uint64 // fold only positions below this (a time bound); 0: none
}

func parseFoldBound(s log.Store, at string) (foldBound, error) {
	if at == "" {
		return foldBound{}, nil
	}
	if strings.HasPrefix(at, "@") {
		c, err := codec.ParseCursor(at, time.Now())
		if err != nil {
			return foldBound{}, usageErrorf("--at: %w", err)
		}
		// The state as it was at that instant includes events at it.
		p, err := s.PositionAt(c.Time.Add(time.Nanosecond))
		if err != nil {
			return foldBound{}, err
		}
		return foldBound{before: p}, nil
	}
	v, err := strconv.ParseUint(at, 10, 64)
	if err != nil || v == 0 {
		return foldBound{}, usageErrorf("--at: want a stream version (1 or more) or @TIME, not %q", at)
	}
	return foldBound{version: v}, nil
}

func (b foldBound) stops(rec *codec.Record) bool {
	return b.version != 0 && rec.Version > b.version || b.before != 0 && rec.Position >= b.before
}

// foldEntry is one stream's fold in progress.
type foldEntry struct {
	name    string
	version uint64
	last    uint64 // position of the last event folded
	state   any
	folded  int // events folded in this run
}

func runFold(ctx context.Context, g *globalOptions, o *foldOptions, f eventFilter, r fold.Reducer) error {
	p, err := g.printerPiped(output.FormatJSON)
	if err != nil {
		return err
	}
	s, err := g.openStore(false)
	if err != nil {
		return err
	}
	defer s.Close()
	bound, err := parseFoldBound(s, o.At)
	if err != nil {
		return err
	}
	fr := &folder{g: g, s: s, r: r, p: p, o: o, bound: bound, entries: map[string]*foldEntry{}}
	if name, ok := f.sel.Stream(); ok {
		err = fr.one(name)
	} else {
		err = fr.many(f)
	}
	if err == nil && o.Follow {
		err = fr.follow(ctx, f)
	}
	if ferr := p.Flush(); err == nil {
		err = ferr
	}
	return err
}

type folder struct {
	g       *globalOptions
	s       log.Store
	r       fold.Reducer
	p       *output.Printer
	o       *foldOptions
	bound   foldBound
	entries map[string]*foldEntry
	keys    []string // a table's state columns, once printed (nil: one state column)
	next    uint64   // where following continues
	in      fold.Input
	buf     []byte
}

// step folds one record into its entry.
func (fr *folder) step(e *foldEntry, rec *codec.Record) error {
	fr.in = fold.Input{
		Position: rec.Position, Stream: e.name, Version: rec.Version, Type: string(rec.Type),
		Time: time.Unix(0, rec.Time).UTC(), ID: string(rec.ID), Data: rec.Data, Metadata: rec.Metadata,
	}
	state, err := fr.r.Step(e.state, &fr.in)
	if err != nil {
		return err
	}
	e.state, e.version, e.last = state, rec.Version, rec.Position
	e.folded++
	if fr.o.Trace {
		return fr.printTrace(e, rec)
	}
	return nil
}

func (fr *folder) newEntry(name string) (*foldEntry, error) {
	state, err := fr.r.Init()
	if err != nil {
		return nil, err
	}
	e := &foldEntry{name: name, state: state}
	fr.entries[name] = e
	return e, nil
}

// one folds a single stream, starting from its snapshot when there is one.
func (fr *folder) one(name string) error {
	_, next, err := fr.s.Bounds()
	if err != nil {
		return err
	}
	fr.next = next
	e, err := fr.newEntry(name)
	if err != nil {
		return err
	}
	useSnapshots := !fr.o.NoSnapshot && !fr.o.Trace
	from := uint64(1)
	if useSnapshots {
		if snap, ok := fr.s.LoadSnapshot(fr.r.Fingerprint(), name); ok && (fr.bound.version == 0 || snap.Version <= fr.bound.version) && (fr.bound.before == 0 || snap.Position < fr.bound.before) {
			if state, err := codec.DecodeJSON(snap.State); err == nil {
				e.state, e.version, e.last = state, snap.Version, snap.Position
				from = snap.Version + 1
			}
		}
	}
	sel, err := codec.ParseSelection(name)
	if err != nil {
		return usageErrorf("%w", err)
	}
	q := log.Query{Selection: sel, From: codec.Cursor{Kind: codec.CursorAfterHead, N: from - 1}, To: fr.next - 1}
	err = fr.read(context.Background(), q, func(rec *codec.Record) error {
		if fr.bound.stops(rec) {
			return errStop
		}
		return fr.step(e, rec)
	})
	if errors.Is(err, log.ErrNotFound) && fr.o.Follow {
		err = nil // not there yet: -f waits for it
	} else if err != nil {
		return err
	}
	if e.version == 0 && !fr.o.Follow {
		if fr.bound.before != 0 {
			return fmt.Errorf("%w: stream %s has no events before %s", log.ErrNotFound, name, fr.o.At[1:])
		}
		return fmt.Errorf("%w: stream %s", log.ErrNotFound, name)
	}
	if useSnapshots && e.folded >= snapshotMin && fr.bound == (foldBound{}) {
		if b, err := codec.EncodeJSON(e.state); err == nil {
			// Best effort: a read-only store just gets no snapshot.
			_ = fr.s.SaveSnapshot(fr.r.Fingerprint(), name, log.Snapshot{Version: e.version, Position: e.last, State: b})
		}
	}
	if fr.o.Trace || e.version == 0 { // -f on a stream not there yet: nothing to print
		return nil
	}
	return fr.printRows([]*foldEntry{e})
}

// many folds every stream of a selection in one pass over the log.
func (fr *folder) many(f eventFilter) error {
	_, next, err := fr.s.Bounds()
	if err != nil {
		return err
	}
	fr.next = next
	// The initial fold reads up to the end committed now; following goes
	// on from there.
	q := log.Query{Selection: f.sel, Types: f.typeList, From: codec.Cursor{Kind: codec.CursorStart}, To: next - 1}
	if fr.bound.before != 0 {
		q.To = min(q.To, fr.bound.before-1)
	}
	err = fr.read(context.Background(), q, func(rec *codec.Record) error {
		e := fr.entries[string(rec.Stream)]
		if e == nil {
			var err error
			if e, err = fr.newEntry(string(rec.Stream)); err != nil {
				return err
			}
		}
		if fr.bound.version != 0 && rec.Version > fr.bound.version {
			return nil
		}
		return fr.step(e, rec)
	})
	if err != nil {
		return err
	}
	if fr.o.Trace {
		return nil
	}
	rows := make([]*foldEntry, 0, len(fr.entries))
	for _, e := range fr.entries {
		rows = append(rows, e)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	return fr.printRows(rows)
}

// read runs q through fn; errStop from fn ends it cleanly. A bound of
// position 0 (an empty log) reads nothing.
func (fr *folder) read(ctx context.Context, q log.Query, fn func(*codec.Record) error) error {
	if !q.Follow && q.To == 0 {
		if name, ok := q.Selection.Stream(); ok {
			_, err := fr.s.Head(name) // a missing stream is still ErrNotFound
			return err
		}
		return nil
	}
	for rec, err := range fr.s.Read(ctx, q) {
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// follow folds new events as they arrive and prints each changed state.
func (fr *folder) follow(ctx context.Context, f eventFilter) error {
	if err := fr.p.Flushed(); err != nil {
		return err
	}
	q := log.Query{Selection: f.sel, Types: f.typeList, From: codec.Cursor{Kind: codec.CursorPosition, N: fr.next}, Follow: true, Poll: fr.o.Poll}
	return fr.read(ctx, q, func(rec *codec.Record) error {
		e := fr.entries[string(rec.Stream)]
		if e == nil {
			var err error
			if e, err = fr.newEntry(string(rec.Stream)); err != nil {
				return err
			}
		}
		if rec.Position <= e.last {
			return nil
		}
		if err := fr.step(e, rec); err != nil {
			return err
		}
		if fr.o.Trace {
			return fr.p.Flushed()
		}
		if err := fr.printRow(e, fr.keys); err != nil {
			return err
		}
		return fr.p.Flushed()
	})
}

// printRows prints the folded states: for a terminal table, one column per
// top-level key of the states; otherwise {"stream","version","state"}.
func (fr *folder) printRows(rows []*foldEntry) error {
	var keys []string
	if fr.p.Tabular() {
		seen := map[string]bool{}
		for _, e := range rows {
			if m, ok := e.state.(map[string]any); ok {
				for k := range m {
					if !seen[k] {
						seen[k] = true
						keys = append(keys, k)
					}
				}
			}
		}
		sort.Strings(keys)
		if keys == nil {
			keys = []string{}
		}
		fr.keys = keys // fold -f prints its updates in the same columns
	}
	for _, e := range rows {
		if err := fr.printRow(e, keys); err != nil {
			return err
		}
	}
	return nil
}

// printRow prints one stream's state; with keys (a table), the state's
// top-level values are columns.
func (fr *folder) printRow(e *foldEntry, keys []string) error {
	var err error
	if fr.buf, err = codec.AppendJSON(fr.buf[:0], e.state); err != nil {
		return err
	}
	fields := []output.Field{{Key: "stream", Value: e.name}, {Key: "version", Value: e.version}}
	if keys == nil {
		fields = append(fields, output.Field{Key: "state", Value: json.RawMessage(fr.buf), Text: string(fr.buf)})
		return fr.p.Row(fields)
	}
	m, _ := e.state.(map[string]any)
	if len(keys) == 0 { // states that are not objects: one column
		fields = append(fields, output.Field{Key: "state", Value: json.RawMessage(fr.buf), Text: string(fr.buf)})
	}
	for _, k := range keys {
		v, ok := m[k]
		text := ""
		if ok {
			if str, isStr := v.(string); isStr {
				text = str
			} else if b, err := codec.EncodeJSON(v); err == nil {
				text = string(b)
			}
		}
		fields = append(fields, output.Field{Key: k, Value: v, Text: text, Free: true})
	}
	return fr.p.Row(fields)
}

// printTrace prints an event and the state after it.
func (fr *folder) printTrace(e *foldEntry, rec *codec.Record) error {
	ev := codec.AppendRecordJSON(nil, rec)
	state, err := codec.EncodeJSON(e.state)
	if err != nil {
		return err
	}
	doc := append(append(append(append([]byte(`{"event":`), ev...), `,"state":`...), state...), '}')
	return fr.p.JSON(doc)
}
