package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/atomicfile"
)

// eventFilter picks the events a reading command prints: a selection of
// streams and, optionally, a set of types.
type eventFilter struct {
	sel       codec.Selection
	types     map[string]bool // nil: every type
	typeList  []string        // the same types, for a store's query
	fromGroup bool            // no selection given: use a group's (tail --group)
}

func newEventFilter(pattern string, types []string) (eventFilter, error) {
	sel, err := codec.ParseSelection(pattern)
	if err != nil {
		return eventFilter{}, usageErrorf("%w", err)
	}
	f := eventFilter{sel: sel}
	for _, t := range types {
		if err := codec.ValidateType(t); err != nil {
			return eventFilter{}, usageErrorf("--type: %w", err)
		}
		if f.types == nil {
			f.types = map[string]bool{}
		}
		f.types[t] = true
		f.typeList = append(f.typeList, t)
	}
	return f, nil
}

// newUnionFilter is newEventFilter for several SELECTION arguments:
// their union (none: every stream).
func newUnionFilter(patterns []string, types []string) (eventFilter, error) {
	first := ""
	if len(patterns) > 0 {
		first = patterns[0]
	}
	f, err := newEventFilter(first, types)
	if err != nil || len(patterns) < 2 {
		return f, err
	}
	sels := []codec.Selection{f.sel}
	for _, p := range patterns[1:] {
		sel, err := codec.ParseSelection(p)
		if err != nil {
			return eventFilter{}, usageErrorf("%w", err)
		}
		sels = append(sels, sel)
	}
	f.sel = codec.Union(sels...)
	return f, nil
}

func (f eventFilter) match(rec *codec.Record) bool {
	if f.types != nil && !f.types[string(rec.Type)] {
		return false
	}
	if name, ok := f.sel.Stream(); ok {
		return string(rec.Stream) == name
	}
	return f.sel.All() || f.sel.Match(string(rec.Stream))
}

// eventReader reads a selection's events through the store's Read, for
// the commands that print or hand them on: from a cursor or the last N,
// up to an optional bound, following when asked. fn is called once per
// event, in position order; errStop from it ends the read cleanly.
type eventReader struct {
	s       log.Store
	f       eventFilter
	ios     *IOStreams
	to      uint64 // with bounded, deliver nothing after this position
	bounded bool
	done    bool // fn asked to stop
}

// errStop, returned by a deliver function, ends the reading (--count).
var errStop = errors.New("stop")

// read runs q, with the reader's selection and bound, through fn.
func (r *eventReader) read(ctx context.Context, q log.Query, fn func(*codec.Record) error) error {
	switch q.From.Kind {
	case codec.CursorStored:
		return usageErrorf("cursor stored needs a consumer group: --group NAME")
	case codec.CursorPosition:
		first, _, err := r.s.Bounds()
		if err != nil {
			return err
		}
		if q.From.N < first && r.ios != nil {
			fmt.Fprintf(r.ios.ErrOut, "evt: note: position %d is before the first retained event (%d); reading from there\n", q.From.N, first)
		}
	}
	if r.bounded {
		if r.to == 0 {
			return nil // the bound lies before every event
		}
		q.To = r.to
	}
	q.Selection, q.Types = r.f.sel, r.f.typeList
	for rec, err := range r.s.Read(ctx, q) {
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			if errors.Is(err, errStop) {
				r.done = true
				return nil
			}
			return err
		}
	}
	return nil
}

// readFrom delivers every matching committed event from the cursor on.
func (r *eventReader) readFrom(c codec.Cursor, fn func(*codec.Record) error) error {
	return r.read(context.Background(), log.Query{From: c}, fn)
}

// lastN delivers the last n matching events.
func (r *eventReader) lastN(n uint64, fn func(*codec.Record) error) error {
	return r.read(context.Background(), log.Query{From: codec.Cursor{Kind: codec.CursorBeforeEnd, N: n}}, fn)
}

// cursorFile keeps the position of the last event a script has seen, so
// the next run resumes right after it. It is written with atomicfile.Write
// (fsync of the file and of its directory), so a crash or a power loss
// leaves an old position or the new one, never a torn one and never none.
//
// Those two fsyncs take milliseconds, so a burst of events is not saved
// after each one: the position is written at once when the last write is
// cursorSaveEvery old, else by a timer that much after the previous write,
// and always by flush when tail ends (also on an interrupt). A kill -9 or
// a power loss thus loses at most the last cursorSaveEvery of positions:
// the next run prints those events again, and never skips one.
type cursorFile struct {
	path string

	mu      sync.Mutex // guards the fields below: the timer saves from its own goroutine
	saved   uint64     // the position the file holds
	pending uint64     // the last position printed
	wrote   time.Time  // when the file was last written
	timer   *time.Timer
	err     error // a failed write of the timer's, for the next save or flush
}

// cursorSaveEvery bounds how old the saved position gets while events
// stream (a tenth of a second: ten pairs of fsyncs a second at most).
const cursorSaveEvery = 100 * time.Millisecond

// load returns the saved position, or 0 when the file does not exist.
func (c *cursorFile) load() (uint64, error) {
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	p, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cursor file %s: not a position: %q", c.path, clipText(string(b)))
	}
	c.saved, c.pending = p, p
	return p, nil
}

// check fails early when the cursor file could not be saved, before an
// event is printed that the next run would then print again.
func (c *cursorFile) check() error {
	dir := filepath.Dir(c.path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("cursor file %s: directory %s does not exist", c.path, dir)
	}
	return nil
}

// save notes pos as the last position printed and writes it, now or
// soon (see cursorFile).
func (c *cursorFile) save(pos uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.pending = pos
	if pos == c.saved {
		return nil
	}
	if since := time.Since(c.wrote); since >= cursorSaveEvery {
		return c.write()
	} else if c.timer == nil {
		c.timer = time.AfterFunc(cursorSaveEvery-since, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.timer = nil
			if c.err == nil && c.pending != c.saved {
				c.err = c.write()
			}
		})
	}
	return nil
}

// flush writes the last position printed, if it is not saved yet. tail
// calls it once it has printed its last event.
func (c *cursorFile) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.err != nil || c.pending == c.saved {
		return c.err
	}
	return c.write()
}

// write writes c.pending; the caller holds c.mu.
func (c *cursorFile) write() error {
	if err := atomicfile.Write(c.path, []byte(strconv.FormatUint(c.pending, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("cursor file: %w", err)
	}
	c.saved, c.wrote = c.pending, time.Now()
	return nil
}

func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
