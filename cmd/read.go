package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log/local"
)

// eventFilter picks the events a reading command prints: a selection of
// streams and, optionally, a set of types.
type eventFilter struct {
	sel       codec.Selection
	types     map[string]bool // nil: every type
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
	}
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

// eventReader delivers a selection's events in position order: from a
// cursor or the last N, then, when following, each new one as it is
// committed. It remembers the last position delivered, so an event is
// never delivered twice when the initial read and the follow overlap.
type eventReader struct {
	s       *local.Store
	f       eventFilter
	ios     *IOStreams
	next    uint64 // the log position to scan from when following
	last    uint64 // the last position delivered
	to      uint64 // with bounded, deliver nothing after this position
	bounded bool
	done    bool // the deliver function asked to stop
}

// deliver wraps fn: it filters, skips what was delivered already, honours
// the upper bound and turns errStop into a clean end.
func (r *eventReader) deliver(fn func(*codec.Record) error) func(*codec.Record) error {
	return func(rec *codec.Record) error {
		if r.bounded && rec.Position > r.to {
			r.done = true
			return local.ErrStop
		}
		if rec.Position <= r.last || !r.f.match(rec) {
			return nil
		}
		r.last = rec.Position
		err := fn(rec)
		if errors.Is(err, errStop) {
			r.done = true
			return local.ErrStop
		}
		return err
	}
}

// errStop, returned by a deliver function, ends the reading (--count).
var errStop = errors.New("stop")

// start reads the committed end: following continues from there.
func (r *eventReader) start() (first uint64, err error) {
	first, next, err := r.s.Bounds()
	r.next = next
	return first, err
}

// readFrom delivers every matching committed event from the cursor on.
func (r *eventReader) readFrom(c codec.Cursor, fn func(*codec.Record) error) error {
	first, err := r.start()
	if err != nil {
		return err
	}
	d := r.deliver(fn)
	stream, single := r.f.sel.Stream()
	if err := r.mustExist(); err != nil {
		return err
	}
	switch c.Kind {
	case codec.CursorEnd:
		return nil
	case codec.CursorBeforeEnd:
		return r.lastN(c.N, fn)
	case codec.CursorStored:
		return usageErrorf("cursor stored needs a consumer group: --group NAME")
	case codec.CursorPosition:
		if c.N < first {
			fmt.Fprintf(r.ios.ErrOut, "evt: note: position %d is before the first retained event (%d); reading from there\n", c.N, first)
		}
		r.last = c.N - 1
	case codec.CursorTime:
		p, err := r.s.PositionAt(c.Time)
		if err != nil {
			return err
		}
		r.last = p - 1
	case codec.CursorAfterHead:
		if single && r.f.types == nil {
			_, err := r.s.ReadStream(stream, c.N+1, d)
			return err
		}
		if r.f.sel.All() && r.f.types == nil {
			r.last = first + c.N - 1
			break
		}
		skip := c.N
		inner := d
		d = func(rec *codec.Record) error {
			if skip > 0 && r.f.match(rec) && rec.Position > r.last {
				skip--
				r.last = rec.Position
				return nil
			}
			return inner(rec)
		}
	}
	if single {
		_, err := r.s.ReadStream(stream, 1, d)
		return err
	}
	_, err = r.s.Scan(max(r.last+1, first), d)
	return err
}

// mustExist fails with ErrNotFound (exit 4) when the selection is one
// stream that does not exist, whatever the cursor.
func (r *eventReader) mustExist() error {
	if stream, single := r.f.sel.Stream(); single {
		if _, err := r.s.Head(stream); err != nil {
			return err
		}
	}
	return nil
}

// lastN delivers the last n matching events.
func (r *eventReader) lastN(n uint64, fn func(*codec.Record) error) error {
	first, err := r.start()
	if err != nil {
		return err
	}
	if err := r.mustExist(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	d := r.deliver(fn)
	stream, single := r.f.sel.Stream()
	switch {
	case single && r.f.types == nil:
		info, err := r.s.Head(stream)
		if err != nil {
			return err
		}
		from := uint64(1)
		if info.Version > n {
			from = info.Version - n + 1
		}
		_, err = r.s.ReadStream(stream, from, d)
		return err
	case r.f.sel.All() && r.f.types == nil:
		from := first
		if r.next > n && r.next-n > first {
			from = r.next - n
		}
		_, err := r.s.Scan(from, d)
		return err
	}
	// A glob or a type filter: keep the last n matches of one pass (a
	// selection over a category may scan; a single stream reads only
	// itself).
	ring := make([]codec.Record, 0, min(n, 4096))
	var at int
	keep := func(rec *codec.Record) error {
		if !r.f.match(rec) {
			return nil
		}
		c := cloneRecord(rec)
		if uint64(len(ring)) < n {
			ring = append(ring, c)
		} else {
			ring[at] = c
			at = (at + 1) % len(ring)
		}
		return nil
	}
	if single {
		if _, err := r.s.ReadStream(stream, 1, keep); err != nil {
			return err
		}
	} else if _, err := r.s.Scan(first, keep); err != nil {
		return err
	}
	for i := range ring {
		if err := d(&ring[(at+i)%len(ring)]); err != nil {
			if errors.Is(err, local.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// follow delivers each new matching event until ctx is done, the deliver
// function stops, or idle passes without an event (0: never).
func (r *eventReader) follow(ctx context.Context, poll bool, idle time.Duration, fn func(*codec.Record) error) error {
	w, err := r.s.Watch(local.DefaultPoll, poll)
	if err != nil {
		return err
	}
	defer w.Close()
	d := r.deliver(fn)
	lastEvent := time.Now()
	for !r.done {
		before := r.last
		next, err := r.s.Scan(r.next, d)
		if err != nil {
			return err
		}
		r.next = next
		if r.done {
			return nil
		}
		if r.last != before {
			lastEvent = time.Now()
		}
		wctx := ctx
		if idle > 0 {
			left := idle - time.Since(lastEvent)
			if left <= 0 {
				return nil
			}
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, left)
			err = w.Wait(wctx)
			cancel()
		} else {
			err = w.Wait(wctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// the idle timeout: one more scan decides
		}
	}
	return nil
}

func cloneRecord(rec *codec.Record) codec.Record {
	c := *rec
	c.Stream = append([]byte(nil), rec.Stream...)
	c.Type = append([]byte(nil), rec.Type...)
	c.ID = append([]byte(nil), rec.ID...)
	c.Data = append([]byte(nil), rec.Data...)
	if rec.Metadata != nil {
		c.Metadata = append([]byte(nil), rec.Metadata...)
	}
	return c
}

// cursorFile keeps the position of the last event a script has seen, so
// the next run resumes right after it. It is replaced atomically (write a
// temporary file, rename), so a crash leaves the old or the new position,
// never a torn one.
type cursorFile struct {
	path  string
	saved uint64
}

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
	c.saved = p
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

func (c *cursorFile) save(pos uint64) error {
	if pos == c.saved {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(c.path), "."+filepath.Base(c.path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(pos, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("cursor file: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("cursor file: %w", err)
	}
	c.saved = pos
	return nil
}

func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
