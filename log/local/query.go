package local

import (
	"context"
	"errors"
	"iter"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// Read yields the events q selects (see log.Store.Read). A one-stream
// selection without a type filter, and a union of streams, reads only
// those streams, through their back-pointers; -N of the whole log starts N positions before the end;
// other selections scan the log from the cursor. Following wakes on the
// commit file (Watch) and reads only what was committed since.
func (s *Store) Read(ctx context.Context, q log.Query) iter.Seq2[*codec.Record, error] {
	return func(yield func(*codec.Record, error) bool) {
		r := &queryReader{s: s, q: q, yield: yield}
		for _, t := range q.Types {
			if r.types == nil {
				r.types = map[string]bool{}
			}
			r.types[t] = true
		}
		err := r.run(ctx)
		if err != nil && !r.done {
			yield(nil, err)
		}
	}
}

// queryReader is the state of one Read. It remembers the last position
// yielded, so an event is never yielded twice where the initial read and
// the follow overlap.
type queryReader struct {
	s     *Store
	q     log.Query
	types map[string]bool // nil: every type
	yield func(*codec.Record, error) bool
	next  uint64 // the log position to scan from when following
	last  uint64 // the last position yielded
	done  bool   // the loop stopped, or the read passed q.To
}

func (r *queryReader) run(ctx context.Context) error {
	var err error
	if r.q.From.Kind == codec.CursorBeforeEnd {
		err = r.lastN(r.q.From.N)
	} else {
		err = r.readFrom(r.q.From)
	}
	if errors.Is(err, log.ErrNotFound) && r.q.Follow {
		err = nil // the stream does not exist yet: following waits for it
	}
	if err != nil || r.done || !r.q.Follow {
		return err
	}
	return r.follow(ctx)
}

// match reports whether the query selects rec.
func (r *queryReader) match(rec *codec.Record) bool {
	if r.types != nil && !r.types[string(rec.Type)] {
		return false
	}
	if name, ok := r.q.Selection.Stream(); ok {
		return string(rec.Stream) == name
	}
	return r.q.Selection.All() || r.q.Selection.Match(string(rec.Stream))
}

// deliver is the scan callback that yields: it filters, skips what was
// yielded already, honours q.To and ends the scan when the loop stops.
func (r *queryReader) deliver(rec *codec.Record) error {
	if r.q.To > 0 && rec.Position > r.q.To {
		r.done = true
		return ErrStop
	}
	if rec.Position <= r.last || !r.match(rec) {
		return nil
	}
	r.last = rec.Position
	if !r.yield(rec, nil) {
		r.done = true
		return ErrStop
	}
	return nil
}

// start reads the committed end: following continues from there.
func (r *queryReader) start() (first uint64, err error) {
	first, next, err := r.s.Bounds()
	r.next = next
	return first, err
}

// mustExist fails with ErrNotFound when the selection is one stream that
// does not exist, whatever the cursor.
func (r *queryReader) mustExist() error {
	if stream, single := r.q.Selection.Stream(); single {
		if _, err := r.s.Head(stream); err != nil {
			return err
		}
	}
	return nil
}

// readFrom yields every selected committed event from the cursor on.
func (r *queryReader) readFrom(c codec.Cursor) error {
	first, err := r.start()
	if err != nil {
		return err
	}
	if err := r.mustExist(); err != nil {
		return err
	}
	d := r.deliver
	stream, single := r.q.Selection.Stream()
	switch c.Kind {
	case codec.CursorEnd:
		return nil
	case codec.CursorStored:
		return errors.New("cursor stored names a consumer group's position: resolve it first")
	case codec.CursorPosition:
		r.last = c.N - 1
	case codec.CursorTime:
		p, err := r.s.PositionAt(c.Time)
		if err != nil {
			return err
		}
		r.last = p - 1
	case codec.CursorAfterHead:
		// Counting versions or positions instead of events is right
		// only while every one of them is a retained event.
		dense, err := r.dense()
		if err != nil {
			return err
		}
		if dense && single && r.types == nil {
			_, err := r.s.ReadStream(stream, c.N+1, d)
			return err
		}
		if dense && r.q.Selection.All() && r.types == nil {
			r.last = first + c.N - 1
			break
		}
		skip := c.N
		d = func(rec *codec.Record) error {
			if skip > 0 && r.match(rec) && rec.Position > r.last {
				skip--
				r.last = rec.Position
				return nil
			}
			return r.deliver(rec)
		}
	}
	if single {
		_, err := r.s.ReadStream(stream, 1, d)
		return err
	}
	if names, ok := r.unionStreams(); ok && c.Kind != codec.CursorAfterHead {
		return r.readUnion(names, max(r.last, max(first, 1)-1), 0)
	}
	_, err = r.s.Scan(max(r.last+1, first), d)
	return err
}

// dense reports whether every position from the first retained one to
// the committed end holds a retained event (no cut, no retention rule:
// the view is plain), so +N and -N may count positions and versions
// rather than events. Markers, cut events and events a rule removes
// take positions and versions that are not events.
func (r *queryReader) dense() (bool, error) {
	c, err := r.s.committed()
	if err != nil {
		return false, err
	}
	v, err := r.s.view(&c)
	if err != nil {
		return false, err
	}
	return v.plain, nil
}

// lastN yields the last n selected events.
func (r *queryReader) lastN(n uint64) error {
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
	dense, err := r.dense()
	if err != nil {
		return err
	}
	if names, ok := r.unionStreams(); ok {
		return r.readUnion(names, max(first, 1)-1, n)
	}
	stream, single := r.q.Selection.Stream()
	switch {
	case single && r.types == nil:
		// A stream's versions after its cut are its events, whatever
		// the limits: they remove a prefix of it.
		info, err := r.s.Head(stream)
		if err != nil {
			return err
		}
		from := uint64(1)
		if info.Version > n {
			from = info.Version - n + 1
		}
		_, err = r.s.ReadStream(stream, from, r.deliver)
		return err
	case r.q.Selection.All() && r.types == nil && dense:
		from := first
		if r.next > n && r.next-n > first {
			from = r.next - n
		}
		_, err := r.s.Scan(from, r.deliver)
		return err
	}
	if single {
		// One stream with a type filter: keep the last n matches of
		// the stream's own events.
		ring := newRing(n)
		if _, err := r.s.ReadStream(stream, 1, func(rec *codec.Record) error {
			if r.match(rec) {
				ring.keep(rec)
			}
			return nil
		}); err != nil {
			return err
		}
		return r.deliverAll(ring.records())
	}
	return r.lastNBack(first, n)
}

// lastNBack yields the last n events of a glob or a type filter: it
// scans windows of the log back from the end, each twice as long as the
// one after it, until n matches are found or the start is reached. The
// cost is about twice the span of the log that holds the last n matches,
// not the log.
func (r *queryReader) lastNBack(first, n uint64) error {
	var windows [][]codec.Record // newest first, each in position order
	found := uint64(0)
	hi := r.next
	span := max(4*n, 4096)
	for hi > first && found < n {
		lo := first
		if hi-first > span {
			lo = hi - span
		}
		ring := newRing(n - found)
		end := hi
		if _, err := r.s.Scan(lo, func(rec *codec.Record) error {
			if rec.Position >= end {
				return ErrStop
			}
			if r.match(rec) {
				ring.keep(rec)
			}
			return nil
		}); err != nil {
			return err
		}
		got := ring.records()
		windows = append(windows, got)
		found += uint64(len(got))
		hi, span = lo, span*2
	}
	for i := len(windows) - 1; i >= 0; i-- {
		if err := r.deliverAll(windows[i]); err != nil || r.done {
			return err
		}
	}
	return nil
}

// deliverAll delivers recs in order; the loop stopping ends it cleanly.
func (r *queryReader) deliverAll(recs []codec.Record) error {
	for i := range recs {
		if err := r.deliver(&recs[i]); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// ring keeps copies of the last n records it is given.
type ring struct {
	n   uint64
	buf []codec.Record
	at  int // the oldest record once buf is full
}

func newRing(n uint64) *ring { return &ring{n: n, buf: make([]codec.Record, 0, min(n, 4096))} }

func (g *ring) keep(rec *codec.Record) {
	c := cloneRecord(rec)
	if uint64(len(g.buf)) < g.n {
		g.buf = append(g.buf, c)
		return
	}
	g.buf[g.at] = c
	g.at = (g.at + 1) % len(g.buf)
}

// records returns what it kept, oldest first.
func (g *ring) records() []codec.Record {
	return append(g.buf[g.at:len(g.buf):len(g.buf)], g.buf[:g.at]...)
}

// follow yields each new selected event until ctx is done, the loop
// stops, or q.Idle passes without an event.
func (r *queryReader) follow(ctx context.Context) error {
	w, err := r.s.Watch(DefaultPoll, r.q.Poll)
	if err != nil {
		return err
	}
	defer w.Close()
	lastEvent := time.Now()
	for !r.done {
		before := r.last
		next, err := r.s.Scan(r.next, r.deliver)
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
		if r.q.CaughtUp != nil {
			if err := r.q.CaughtUp(); err != nil {
				return err
			}
		}
		wctx := ctx
		if r.q.Idle > 0 {
			left := r.q.Idle - time.Since(lastEvent)
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
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		// Otherwise the idle timeout: one more scan decides.
	}
	return nil
}

// cloneRecord copies rec out of the scan buffer it points into.
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
