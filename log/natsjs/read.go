package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// head reads the head of stream from its subject's last message, through
// the stream's leader (read-your-writes). A stream never appended to has
// the zero head.
func (s *Store) head(ctx context.Context, stream string) (head, error) {
	m, err := s.getMsg(ctx, msgGetRequest{LastFor: s.subjectOf(stream)})
	if err != nil {
		return head{}, s.wrap("read the head of "+stream, err)
	}
	if m == nil {
		return head{}, nil
	}
	e, ok := s.decode(m.Subject, m.Seq, m.Header, nil, m.Time)
	if !ok {
		return head{}, fmt.Errorf("nats: message %d of stream %s was not written by evt", m.Seq, stream)
	}
	return headOf(&e), nil
}

// headsInFlight bounds the head reads one call of heads has in flight.
// Each is a round trip to the stream's leader; a batch over a thousand
// streams read them one after the other at about 0.12 ms each, most of
// a bulk append's time (evt bench --store nats://..., bulk).
const headsInFlight = 64

// heads reads the heads of streams (see head), several at a time.
func (s *Store) heads(ctx context.Context, streams []string) (map[string]head, error) {
	out := make(map[string]head, len(streams))
	if len(streams) > 1 && s.replicas <= 1 && s.direct {
		return s.lastHeads(ctx, streams)
	}
	if len(streams) <= 1 {
		for _, name := range streams {
			h, err := s.head(ctx, name)
			if err != nil {
				return nil, err
			}
			out[name] = h
		}
		return out, nil
	}
	type answer struct {
		i   int
		h   head
		err error
	}
	work := make(chan int)
	answers := make(chan answer)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(headsInFlight, len(streams)) {
		go func() {
			for i := range work {
				h, err := s.head(ctx, streams[i])
				answers <- answer{i, h, err}
			}
		}()
	}
	go func() {
		// Every stream is handed out, also after a failure (a read of
		// a cancelled context fails at once), so that each gets its
		// answer below.
		for i := range streams {
			work <- i
		}
		close(work)
	}()
	var first error
	for range streams {
		a := <-answers
		if a.err != nil && first == nil {
			first = a.err
			cancel() // the rest fail fast; every one still answers
		}
		out[streams[a.i]] = a.h
	}
	if first != nil {
		return nil, first
	}
	return out, nil
}

// multiLastMax is the most subjects one multi-last direct get answers
// (the server's maxAllowedResponses; more are refused whole, 413).
const multiLastMax = 1024

// lastHeads reads the heads of streams with multi-last direct gets, up to
// multiLastMax streams a request. Only for a stream of one replica: a
// direct get is answered by any replica, which may not have the latest
// writes yet, but the one replica is the leader, so this sees every
// acknowledged write, as head does. The server answers under the
// stream's isolation lock, so no batch is seen in part.
func (s *Store) lastHeads(ctx context.Context, streams []string) (map[string]head, error) {
	out := make(map[string]head, len(streams))
	for len(streams) > 0 {
		part := streams[:min(len(streams), multiLastMax)]
		streams = streams[len(part):]
		subjects := make([]string, len(part))
		for i, name := range part {
			subjects[i] = s.subjectOf(name)
			out[name] = head{} // never appended to unless answered
		}
		err := s.directMultiLast(ctx, subjects, func(subject string, seq uint64, h nats.Header, stamp time.Time) error {
			e, ok := s.decode(subject, seq, h, nil, stamp)
			if !ok {
				return fmt.Errorf("nats: message %d of stream %s was not written by evt", seq, s.streamOf(subject))
			}
			out[e.stream] = headOf(&e)
			return nil
		})
		if err != nil {
			return nil, s.wrap("read the heads of the batch's streams", err)
		}
	}
	return out, nil
}

// directGet sends one direct get request (a batch or multi-last one) and
// hands fn each message of the answer, up to its end. Only for a stream
// of one replica (see lastHeads).
func (s *Store) directGet(ctx context.Context, req any, fn func(subject string, seq uint64, h nats.Header, stamp time.Time) error) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	inbox := s.nc.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := s.nc.PublishRequest(s.api+"DIRECT.GET."+s.name, inbox, body); err != nil {
		return err
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return err
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of the answers
			return nil
		case "404": // no message matches
			return nil
		default:
			return fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return fmt.Errorf("direct get: bad Nats-Sequence %q", m.Header.Get("Nats-Sequence"))
		}
		stamp, err := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
		if err != nil {
			return fmt.Errorf("direct get: bad Nats-Time-Stamp %q", m.Header.Get("Nats-Time-Stamp"))
		}
		if err := fn(m.Header.Get("Nats-Subject"), seq, m.Header, stamp); err != nil {
			return err
		}
	}
}

// directMultiLast asks for the last message of each of subjects (at most
// multiLastMax) in one direct get.
func (s *Store) directMultiLast(ctx context.Context, subjects []string, fn func(subject string, seq uint64, h nats.Header, stamp time.Time) error) error {
	return s.directGet(ctx, struct {
		MultiLast []string `json:"multi_last"`
	}{subjects}, fn)
}

// directStamps returns the server's times of the messages first..last
// of the log through batch direct gets (one replica only, see lastHeads):
// one request where a consumer costs three round trips and stays on the
// server. An answer the server cut short (its max bytes) goes on with
// another request.
func (s *Store) directStamps(ctx context.Context, first, last uint64) ([]time.Time, error) {
	times := make([]time.Time, 0, last-first+1)
	for next := first; next <= last; {
		before := len(times)
		req := struct {
			Seq     uint64 `json:"seq"`
			NextFor string `json:"next_by_subj"`
			Batch   int    `json:"batch"`
		}{next, s.root + ".>", int(last - next + 1)}
		err := s.directGet(ctx, req, func(_ string, seq uint64, _ nats.Header, stamp time.Time) error {
			if seq != next {
				return fmt.Errorf("nats: message %d of the append is missing (got %d)", next, seq)
			}
			times = append(times, stamp.UTC())
			next++
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(times) == before {
			return nil, fmt.Errorf("nats: message %d is gone right after its append", next)
		}
	}
	return times[:last-first+1], nil
}

// firstSince is the first message of subject at or after t (server time),
// 0 if none.
func (s *Store) firstSince(ctx context.Context, subject string, t time.Time) (uint64, error) {
	m, err := s.getMsg(ctx, msgGetRequest{NextFor: subject, StartTime: &t})
	if err != nil {
		return 0, s.wrap("find the events since "+t.Format(time.RFC3339), err)
	}
	if m == nil {
		return 0, nil
	}
	return m.Seq, nil
}

// scanRange hands fn the messages of filter from start through end, in
// order, each once, through an ordered consumer; fn returns false to
// stop. With headersOnly the payloads are left out.
func (s *Store) scanRange(ctx context.Context, filter string, start, end uint64, headersOnly bool, fn func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error)) error {
	if start == 0 {
		start = 1
	}
	if start > end {
		return nil
	}
	// An ordered consumer with nothing to deliver would wait: ask the
	// leader for the first match first.
	m, err := s.getMsg(ctx, msgGetRequest{Seq: start, NextFor: filter})
	if err != nil || m == nil || m.Seq > end {
		return err
	}
	return s.consume(ctx, filter, m.Seq, headersOnly, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if meta.Sequence.Stream > end {
			return false, nil
		}
		more, err := fn(msg, meta)
		if !more || err != nil || meta.Sequence.Stream >= end {
			return false, err
		}
		return s.more(ctx, filter, meta, end)
	})
}

// more reports whether a read of filter that got the message of meta
// has more to get up to end: the consumer says how many messages its
// replica has after this one; none there, the leader says whether one is
// still on its way to that replica.
func (s *Store) more(ctx context.Context, filter string, meta *jetstream.MsgMetadata, end uint64) (bool, error) {
	if meta.NumPending > 0 {
		return true, nil
	}
	if s.replicas <= 1 {
		return false, nil
	}
	m, err := s.getMsg(ctx, msgGetRequest{Seq: meta.Sequence.Stream + 1, NextFor: filter})
	if err != nil {
		return false, err
	}
	return m != nil && m.Seq <= end, nil
}

// readHeartbeat is how often the server of an ordered consumer says it is
// there while it has nothing to send (500 ms is the least nats.go takes).
// nats.go recreates an ordered consumer that missed two, and on a
// cluster that is what ends a read whose consumer never answers its
// first pull: TestNatsClusterReadYourWrites saw one or two of its 125
// reads through a follower stall exactly two heartbeats (10.04 s with
// nats.go's default of 5 s for ordered consumers, 1.04 s with this),
// then finish right. The likely cause, not proven: a pull sent to a
// consumer just created on another server, before that server's
// interest in the pull subject has crossed the route. The cost is one
// small message every readHeartbeat to an idle `tail -f`.
const readHeartbeat = 500 * time.Millisecond

// consume runs an ordered consumer of filter from start until fn returns
// false or an error, or ctx is done (its error).
func (s *Store) consume(ctx context.Context, filter string, start uint64, headersOnly bool, fn func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error)) error {
	if err := s.caughtUp(ctx); err != nil {
		return err
	}
	cons, err := s.js.OrderedConsumer(ctx, s.name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
		HeadersOnly:    headersOnly,
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullHeartbeat(readHeartbeat))
	if err != nil {
		return err
	}
	defer s.dropOrdered(cons)
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		more, err := fn(msg, meta)
		if err != nil || !more {
			return err
		}
	}
}

// dropOrdered deletes a finished read's ordered consumer on the server,
// without waiting for the answer. The server would keep it for its
// inactive threshold (5 minutes in nats.go), and every read makes one:
// an import of a few thousand streams' events looked up each stream's
// ids with one and hit the server's consumer limit (10026) after 11000.
func (s *Store) dropOrdered(cons jetstream.Consumer) {
	if info := cons.CachedInfo(); info != nil {
		_ = s.nc.Publish(s.api+"CONSUMER.DELETE."+s.name+"."+info.Name, nil)
	}
}

// limits are the retention rules that apply to one stream: the
// strictest of every rule that matches it.
type limits struct {
	maxAge   time.Duration
	maxCount uint64
}

func limitsOf(r log.Retention, stream string) limits {
	var l limits
	for _, rule := range r.Rules {
		sel, err := codec.ParseSelection(rule.Selection)
		if err != nil || !sel.Match(stream) {
			continue
		}
		if rule.MaxAge > 0 && (l.maxAge == 0 || rule.MaxAge < l.maxAge) {
			l.maxAge = rule.MaxAge
		}
		if rule.MaxCount > 0 && (l.maxCount == 0 || rule.MaxCount < l.maxCount) {
			l.maxCount = rule.MaxCount
		}
	}
	return l
}

// visible reports whether a head shows a stream a read would yield an
// event of: present, and its newest event not expired.
func visible(h head, l limits, now time.Time) bool {
	return h.present() && (l.maxAge == 0 || h.lastTime >= now.Add(-l.maxAge).UnixNano())
}

// retained is nil when a head shows a stream a read would yield an event
// of, else ErrNotFound naming the reason, in the local store's words.
func retained(stream string, h head, l limits, now time.Time) error {
	switch {
	case h.seq == 0:
		return fmt.Errorf("%w: stream %s", log.ErrNotFound, stream)
	case h.deleted:
		return fmt.Errorf("%w: stream %s (deleted)", log.ErrNotFound, stream)
	case h.cut >= h.version:
		return fmt.Errorf("%w: stream %s (truncated before version %d)", log.ErrNotFound, stream, h.cut+1)
	case !visible(h, l, now):
		return fmt.Errorf("%w: stream %s (its events were removed by retention)", log.ErrNotFound, stream)
	}
	return nil
}

// Head returns the head of one stream (log.Store).
func (s *Store) Head(stream string) (log.StreamInfo, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	r, err := s.retention(ctx)
	if err != nil {
		return log.StreamInfo{}, err
	}
	h, err := s.head(ctx, stream)
	if err != nil {
		return log.StreamInfo{}, err
	}
	if err := retained(stream, h, limitsOf(r, stream), time.Now()); err != nil {
		return log.StreamInfo{}, err
	}
	return h.info(stream), nil
}

// Streams returns the head of every stream match accepts, sorted by
// name, from one ordered consumer of every subject's last message.
func (s *Store) Streams(match func(stream string) bool) ([]log.StreamInfo, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	r, err := s.retention(ctx)
	if err != nil {
		return nil, err
	}
	var out []log.StreamInfo
	now := time.Now()
	err = s.eachHead(ctx, func(stream string, h head) {
		if (match == nil || match(stream)) && visible(h, limitsOf(r, stream), now) {
			out = append(out, h.info(stream))
		}
	})
	if err != nil {
		return nil, s.wrap("list the streams", err)
	}
	slices.SortFunc(out, func(a, b log.StreamInfo) int {
		switch {
		case a.Stream < b.Stream:
			return -1
		case a.Stream > b.Stream:
			return 1
		}
		return 0
	})
	return out, nil
}

// eachHead hands fn the head of every stream the log has a message of
// (deleted and wholly cut ones too), in no particular order, from one
// ordered consumer of every subject's last message.
func (s *Store) eachHead(ctx context.Context, fn func(stream string, h head)) error {
	st, err := s.state(ctx)
	if err != nil || st.Msgs == 0 {
		return err
	}
	if err := s.caughtUp(ctx); err != nil {
		return err
	}
	cons, err := s.js.OrderedConsumer(ctx, s.name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.root + ".>"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
		HeadersOnly:    true,
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullHeartbeat(readHeartbeat))
	if err != nil {
		return err
	}
	defer s.dropOrdered(cons)
	defer it.Stop()
	// A stream's head is its message of the highest sequence seen: once
	// nats.go recreates an ordered consumer (a missed heartbeat, on a
	// loaded cluster), it goes on from the last sequence it saw with
	// every message, not only each subject's last (the conformance
	// suite's Heads on three nodes listed a-1 four times).
	heads := map[string]head{}
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if e, ok := s.decode(msg.Subject(), meta.Sequence.Stream, msg.Headers(), nil, meta.Timestamp); ok {
			heads[e.stream] = headOf(&e)
		}
		if meta.NumPending == 0 {
			break
		}
	}
	for stream, h := range heads {
		fn(stream, h)
	}
	return nil
}

// Bounds returns the stream's first sequence and the next (log.Store).
func (s *Store) Bounds() (first, next uint64, err error) {
	ctx, cancel := s.ctx()
	defer cancel()
	st, err := s.state(ctx)
	if err != nil {
		return 0, 0, s.wrap("read the store's bounds", err)
	}
	return st.First, st.Last + 1, nil
}

// PositionAt finds the first message at or after t by binary search over
// positions: event times never decrease along the log (log.Store).
func (s *Store) PositionAt(t time.Time) (uint64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	st, err := s.state(ctx)
	if err != nil {
		return 0, s.wrap("find a position by time", err)
	}
	return s.positionAt(ctx, st, t)
}

func (s *Store) positionAt(ctx context.Context, st streamState, t time.Time) (uint64, error) {
	want := t.UnixNano()
	lo, hi := st.First, st.Last+1
	found := st.Last + 1
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := s.getMsg(ctx, msgGetRequest{Seq: mid, NextFor: s.root + ".>"})
		if err != nil {
			return 0, s.wrap("find a position by time", err)
		}
		if m == nil { // nothing from mid on (purged since)
			hi = mid
			continue
		}
		at := m.Time.UnixNano()
		if e, ok := s.decode(m.Subject, m.Seq, m.Header, nil, m.Time); ok {
			at = e.time
		}
		if at >= want {
			found = min(found, m.Seq)
			hi = mid
		} else {
			lo = m.Seq + 1
		}
	}
	return found, nil
}

// Read yields the events q selects (log.Store).
func (s *Store) Read(ctx context.Context, q log.Query) iter.Seq2[*codec.Record, error] {
	return func(yield func(*codec.Record, error) bool) {
		r := &reader{s: s, q: q}
		if err := r.run(ctx, yield); err != nil {
			yield(nil, err)
		}
	}
}

// reader is the state of one Read.
type reader struct {
	s         *Store
	q         log.Query
	rv        *retView // what retention hides
	single    string   // the stream, when the selection is one
	cut       uint64   // its cut, from its head
	committed uint64   // the log's last position known stored
	rec       codec.Record
}

// selected reports whether an entry is one the query yields.
func (r *reader) selected(ctx context.Context, e *entry) (bool, error) {
	if e.mark != "" || !r.q.Selection.Match(e.stream) {
		return false, nil
	}
	if len(r.q.Types) > 0 && !slices.Contains(r.q.Types, e.typ) {
		return false, nil
	}
	if r.single != "" && e.version <= r.cut {
		return false, nil
	}
	gone, err := r.rv.hidden(ctx, e)
	return !gone, err
}

// whole waits until the atomic batch of e is stored whole: a consumer may
// deliver the first messages of a batch while the server still commits
// the rest, and a reader never shows part of a batch.
func (r *reader) whole(ctx context.Context, e *entry) error {
	for e.batchEnd > r.committed {
		st, err := r.s.state(ctx)
		if err != nil {
			return r.s.wrap("read", err)
		}
		if st.Last >= e.batchEnd {
			r.committed = st.Last
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

func (r *reader) run(ctx context.Context, yield func(*codec.Record, error) bool) error {
	s, q := r.s, r.q
	rctx, cancel := s.ctx()
	defer cancel()
	var err error
	if r.rv, err = s.retView(rctx); err != nil {
		return err
	}
	var single *head
	if name, ok := q.Selection.Stream(); ok {
		h, err := s.head(rctx, name)
		if err != nil {
			return err
		}
		if !q.Follow {
			if err := retained(name, h, limitsOf(r.rv.rules, name), r.rv.now); err != nil {
				return err
			}
		}
		r.single, r.cut, single = name, h.cut, &h
	}
	st, err := s.state(rctx)
	if err != nil {
		return s.wrap("read", err)
	}
	r.committed = st.Last
	end := st.Last
	filter := s.filterOf(q.Selection)
	start, skip := st.First, uint64(0)
	switch q.From.Kind {
	case codec.CursorEnd:
		start = st.Last + 1
	case codec.CursorPosition:
		start = max(q.From.N, st.First)
	case codec.CursorTime:
		if start, err = s.positionAt(rctx, st, q.From.Time); err != nil {
			return err
		}
	case codec.CursorAfterHead:
		skip = q.From.N
	case codec.CursorBeforeEnd:
		if single != nil && single.version-min(single.cut, single.version) <= q.From.N {
			// One stream that holds no more than the n events asked
			// for: all of them, from its first message (the read
			// below finds it in one get). beforeEnd's windows would
			// grow back from the end until they reached that message:
			// in a store of 1M streams, six consumers for a stream whose
			// first event is old (evt tail STREAM -n 100 took 38 ms
			// there, 16 ms among 1000 streams).
			break
		}
		if start, err = r.beforeEnd(rctx, filter, st, q.From.N); err != nil {
			return err
		}
	case codec.CursorStored:
		return errors.New("natsjs: the stored cursor must be resolved to a position first")
	}
	if q.To > 0 {
		end = min(end, q.To)
	}
	if !q.Follow {
		if start > end {
			return nil
		}
		m, err := s.getMsg(rctx, msgGetRequest{Seq: start, NextFor: filter})
		if err != nil {
			return s.wrap("read", err)
		}
		if m == nil || m.Seq > end {
			return nil
		}
		start = m.Seq
	}
	cancel()

	var idle *time.Timer
	var idleCtx context.Context = ctx
	if q.Follow && q.Idle > 0 {
		var stop context.CancelFunc
		idleCtx, stop = context.WithCancel(ctx)
		defer stop()
		idle = time.AfterFunc(q.Idle, stop)
		defer idle.Stop()
	}
	idled := false
	stopped := false
	err = s.consume(idleCtx, filter, start, false, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		seq := meta.Sequence.Stream
		if q.To > 0 && seq > q.To {
			return false, nil
		}
		if !q.Follow && seq > end {
			return false, nil
		}
		e, ok := s.decode(m.Subject(), seq, m.Headers(), m.Data(), meta.Timestamp)
		if ok {
			if err := r.whole(ctx, &e); err != nil {
				return false, err
			}
			if !q.Follow && e.batchEnd > end {
				end = e.batchEnd // the batch was being stored when the read began: all of it
			}
			sel, err := r.selected(ctx, &e)
			if err != nil {
				return false, err
			}
			if sel && skip > 0 {
				skip--
				sel = false
			}
			if sel {
				if idle != nil {
					idle.Reset(q.Idle)
				}
				e.record(&r.rec)
				if !yield(&r.rec, nil) {
					stopped = true
					return false, nil
				}
			}
		}
		if q.Follow && q.CaughtUp != nil && meta.NumPending == 0 {
			// The consumer has handed over all it has: the read waits
			// for more from here (log.Query.CaughtUp).
			if err := q.CaughtUp(); err != nil {
				return false, err
			}
		}
		if q.To > 0 && seq >= q.To {
			return false, nil
		}
		if !q.Follow {
			if seq >= end {
				return false, nil
			}
			return s.more(ctx, filter, meta, end)
		}
		return true, nil
	})
	if stopped {
		return nil
	}
	if err != nil && ctx.Err() == nil && idleCtx.Err() != nil {
		idled = true
	}
	if idled {
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.wrap("read", err)
	}
	return nil
}

// beforeEnd finds where the last n selected events up to the end start:
// it counts selected events in windows growing back from the end.
func (r *reader) beforeEnd(ctx context.Context, filter string, st streamState, n uint64) (uint64, error) {
	if n == 0 {
		return st.Last + 1, nil
	}
	// The n are the last of the whole log; To bounds the read after.
	end := st.Last
	window := 4*n + 16
	for {
		from := st.First
		if end+1 > window && end+1-window > st.First {
			from = end + 1 - window
		}
		var picked []uint64
		err := r.s.scanRange(ctx, filter, from, end, false, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
			e, ok := r.s.decode(m.Subject(), meta.Sequence.Stream, m.Headers(), m.Data(), meta.Timestamp)
			if !ok {
				return true, nil
			}
			sel, err := r.selected(ctx, &e)
			if sel {
				picked = append(picked, e.seq)
			}
			return true, err
		})
		if err != nil {
			return 0, r.s.wrap("read", err)
		}
		if uint64(len(picked)) >= n {
			return picked[uint64(len(picked))-n], nil
		}
		if from <= st.First {
			if len(picked) > 0 {
				return picked[0], nil
			}
			return st.Last + 1, nil
		}
		window *= 4
	}
}
