package natsjs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// maxAttempts bounds how often one append re-reads the heads and tries
// again after another writer got in first (its checks failed but the
// caller's expectations still hold).
const maxAttempts = 200

// errNeedGlobal asks plan to start over with the log's last position
// read first: the batch has more checks than messages to carry them.
var errNeedGlobal = errors.New("natsjs: need the global check")

// Append stores b as one atomic batch (see log.Store). How it keeps the
// contract on JetStream:
//
//  1. It reads, through each stream's leader, the head of every stream
//     the batch writes or checks, and checks the expectations against
//     them; it looks for the batch's given ids among each stream's events
//     of the last Options.IDLookback and drops those already stored.
//  2. It publishes the rest, versions assigned from the heads, as one
//     JetStream atomic batch (ADR-50) in which each stream's first
//     message carries Nats-Expected-Last-Subject-Sequence = the head it
//     read, and every other message a check of a stream the batch only
//     guards (Nats-Expected-Last-Subject-Sequence-Subject). The server
//     evaluates them at the commit, under the stream lock: a writer that
//     got in first fails the whole batch (10071), nothing is stored, and
//     the append starts again at 1, where a real conflict becomes
//     ErrConflict. Because the check covers each stream from the head
//     read to the commit, the id look-up of 1 is atomic with the write.
//  3. A batch the server refuses for a duplicate Nats-Msg-Id (10201: an
//     id of the dedupe window, which the look-up did not find because it
//     was beyond the look-back or its event was cut off) starts again
//     looking up every id; if the look-up still finds none of them, the
//     ids belong to events no longer in their streams and the batch is
//     sent without Nats-Msg-Id, as the local store appends an id again
//     whose event was compacted away.
func (s *Store) Append(ctx context.Context, b *log.Batch) ([]log.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var force, noMsgID, global, unknown bool
	var unanswered time.Time // since when no server took the batch
	for attempt := 1; ; attempt++ {
		p, err := s.plan(b, force, noMsgID, global)
		if errors.Is(err, errNeedGlobal) {
			global = true
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(p.msgs) == 0 {
			return p.results, nil
		}
		err = s.send(p)
		if err == nil {
			return p.results, nil
		}
		code := errCode(err)
		switch {
		case errors.Is(err, log.ErrTooLarge):
			return nil, err
		case code == errBatchTooLarge:
			return nil, fmt.Errorf("%w: a batch of %d events is more than the nats server takes atomically (%s; an operator raises it with jetstream { limits { batch { max_msgs: N } } })", log.ErrTooLarge, len(p.msgs), err.(*apiError).Description)
		case code == errBatchDuplicateID || errors.Is(err, errDuplicateAck):
			if force {
				noMsgID = true
			}
			force = true
		case code == errWrongLastSeq || code == errWrongLastSeqBusy || code == errTooManyInflight || code == errBatchIncomplete:
			// Another writer got in between: read again. Back off a
			// little once it keeps happening, so that writers of one
			// hot stream take turns rather than collide.
			if attempt > 3 {
				time.Sleep(time.Duration(rand.IntN(min(attempt, 20))+1) * time.Millisecond)
			}
		case errors.Is(err, nats.ErrNoResponders):
			// No stream leader took it (one is being elected): nothing
			// was stored, the whole batch is sent again (untilAnswered).
			if unanswered.IsZero() {
				unanswered = time.Now()
			} else if time.Since(unanswered) > s.opts.Timeout {
				return nil, s.wrap("append", err)
			}
			time.Sleep(min(time.Duration(attempt)*10*time.Millisecond, 200*time.Millisecond))
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			if unknown {
				return nil, fmt.Errorf("nats: no acknowledgement of the append from %s within %s: its outcome is unknown; retrying it with the same ids is safe", s.where, s.opts.Timeout)
			}
			// The batch may have been stored: look for every id of it.
			unknown, force = true, true
		default:
			return nil, s.wrap("append", err)
		}
		if attempt >= maxAttempts {
			return nil, fmt.Errorf("nats: append: gave up after %d attempts: other writers kept changing the streams (last: %v)", attempt, err)
		}
	}
}

// plan is one attempt's messages and the results they will have.
type plan struct {
	msgs    []*nats.Msg
	results []log.Result
	sent    []int // the event of each message
	// copies: results of within-batch duplicates, copied from the event
	// they repeat once it is stored (index → index).
	copies map[int]int
	timed  []bool
}

// plan reads the heads and builds the messages of one attempt.
func (s *Store) plan(b *log.Batch, force, noMsgID, global bool) (*plan, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	n := b.Len()
	names := b.Streams()
	expect := b.Expectations()
	var guards []string
	for name := range expect {
		if !slices.Contains(names, name) {
			guards = append(guards, name)
		}
	}
	// A condition's queries of one stream are checked as that stream's
	// head is (a guard when the batch does not write it); the others on
	// their filter's last message, or on the log's.
	cond := b.Condition()
	var filters []*condFilter
	if cond != nil {
		var whole bool
		filters, whole = s.condFilters(cond)
		global = global || whole
		for _, f := range filters {
			if f.stream != "" && !slices.Contains(names, f.stream) && !slices.Contains(guards, f.stream) {
				guards = append(guards, f.stream)
			}
		}
	}
	slices.Sort(guards)
	timed := false
	for i := range n {
		if b.Event(i).Timed {
			timed = true
			break
		}
	}
	// The log's last position, read before the heads: a check that it
	// did not move covers every head read after it.
	var last uint64
	if global || timed {
		st, err := s.state(ctx)
		if err != nil {
			return nil, s.wrap("append", err)
		}
		last = st.Last
	}
	// A condition's wildcard filters: their last messages, read before
	// the heads, so that a check of a filter also covers the heads of
	// the streams in it (nothing of them moved past the filter's last).
	type check struct {
		subject string
		seq     uint64
	}
	var checks []check
	for _, f := range filters {
		switch {
		case global:
			f.bound = last
		case f.stream == "":
			m, err := s.getMsg(ctx, msgGetRequest{LastFor: f.subject, NoHeader: true})
			if err != nil {
				return nil, s.wrap("append", err)
			}
			if m != nil {
				f.bound = m.Seq
			}
			checks = append(checks, check{f.subject, f.bound})
		}
	}
	heads, err := s.heads(ctx, append(slices.Clone(names), guards...))
	if err != nil {
		return nil, err
	}
	// covered: streams whose head a wildcard filter's check covers, so
	// they need no check of their own (one message of a DCB append
	// carries one check).
	covered := map[string]bool{}
	for _, f := range filters {
		if f.stream == "" && !global {
			for name, h := range heads {
				if h.seq <= f.bound && subjectMatches(f.subject, s.subjectOf(name)) {
					covered[name] = true
				}
			}
		} else if f.stream != "" && !global {
			f.bound = heads[f.stream].seq
		}
	}
	for _, g := range guards {
		if !covered[g] {
			checks = append(checks, check{s.subjectOf(g), heads[g].seq})
		}
	}

	p := &plan{results: make([]log.Result, n), copies: map[int]int{}, timed: make([]bool, n)}
	// Ids: within the batch, then among the stored events.
	firstOf := map[string]int{} // stream NUL id → first event with it
	lookup := map[string]map[string]bool{}
	for i := range n {
		ev := b.Event(i)
		stream := names[ev.Stream]
		key := stream + "\x00" + string(ev.ID())
		if j, ok := firstOf[key]; ok {
			p.copies[i] = j
			continue
		}
		firstOf[key] = i
		if (ev.GivenID || force) && heads[stream].seq != 0 && ev.Marker == 0 {
			if lookup[stream] == nil {
				lookup[stream] = map[string]bool{}
			}
			lookup[stream][string(ev.ID())] = true
		}
	}
	stored := map[int]bool{}
	mark := func(stream string, found map[string]log.Result) {
		for i := range n {
			if _, dup := p.copies[i]; dup {
				continue
			}
			ev := b.Event(i)
			if names[ev.Stream] != stream {
				continue
			}
			if r, ok := found[string(ev.ID())]; ok {
				r.Duplicate = true
				p.results[i] = r
				stored[i] = true
			}
		}
	}
	for stream, ids := range lookup {
		found, err := s.storedIDs(ctx, stream, heads[stream], ids, s.opts.IDLookback)
		if err != nil {
			return nil, err
		}
		mark(stream, found)
	}
	// A stream whose events are all retries is not checked.
	retried := func(name string) bool {
		si := slices.Index(names, name)
		if si < 0 {
			return false
		}
		for i := range n {
			if ev := b.Event(i); ev.Stream == si {
				if j, dup := p.copies[i]; dup {
					if !stored[j] {
						return false
					}
				} else if !stored[i] {
					return false
				}
			}
		}
		return true
	}
	for _, name := range append(slices.Clone(names), guards...) {
		e, ok := expect[name]
		if !ok || retried(name) {
			continue
		}
		h := heads[name]
		if e.Holds(h.version) {
			continue
		}
		// A retry that carries its expectation is exact at any age: the
		// stream moved past the version it expects, so look for the
		// batch's ids among all of the stream's events.
		if ids := lookup[name]; len(ids) > 0 && s.opts.IDLookback > 0 && (e.Kind == log.ExpectVersion || e.Kind == log.ExpectNone) {
			found, err := s.storedIDs(ctx, name, h, ids, -1)
			if err != nil {
				return nil, err
			}
			mark(name, found)
			if retried(name) {
				continue
			}
		}
		return nil, fmt.Errorf("%w: stream %s is at version %d, expected %s", log.ErrConflict, name, h.version, e)
	}

	// The messages.
	var lastTime int64
	if timed && last > 0 {
		m, err := s.getMsg(ctx, msgGetRequest{Seq: last})
		if err != nil {
			return nil, s.wrap("append", err)
		}
		if m != nil {
			if e, ok := s.decode(m.Subject, m.Seq, m.Header, nil, m.Time); ok {
				lastTime = e.time
			} else {
				lastTime = m.Time.UnixNano()
			}
		}
	}
	type streamState struct {
		head    head
		version uint64
		lastMsg int // index in msgs of the stream's last event, -1 if none
		checked bool
	}
	states := make([]streamState, len(names))
	for i, name := range names {
		states[i] = streamState{head: heads[name], version: heads[name].version, lastMsg: -1}
	}
	pendingGuards := checks
	for i := range n {
		if _, dup := p.copies[i]; dup || stored[i] {
			continue
		}
		ev := b.Event(i)
		st := &states[ev.Stream]
		stream := names[ev.Stream]
		rec := ev.Record
		sl, tl, il := int(rec[42]), int(rec[43]), int(rec[44])
		dl := int(binary.LittleEndian.Uint32(rec[48:]))
		ml := int(binary.LittleEndian.Uint32(rec[52:]))
		body := rec[codec.RecordHeaderSize:]
		typ := string(body[sl : sl+tl])
		id := string(body[sl+tl : sl+tl+il])
		data := body[sl+tl+il : sl+tl+il+dl]
		meta := body[sl+tl+il+dl : sl+tl+il+dl+ml]

		h := nats.Header{}
		var version uint64
		if ev.Marker != 0 {
			version = st.version
			cut := binary.LittleEndian.Uint64(rec[16:])
			mark := markTruncate
			if ev.Marker == codec.FlagTombstone {
				mark = markDelete
			}
			h.Set(hdrMark, mark)
			h.Set(hdrCut, u64(cut))
			h.Set(hdrLast, u64(st.head.last))
			h.Set(hdrLastType, st.head.lastType)
			h.Set(hdrLastTime, strconv.FormatInt(st.head.lastTime, 10))
		} else {
			st.version++
			version = st.version
			if st.head.cut > 0 {
				h.Set(hdrCut, u64(st.head.cut))
			}
			if st.head.cutAt > 0 {
				h.Set(hdrCutAt, u64(st.head.cutAt))
			}
			switch {
			case st.lastMsg >= 0:
				h.Set(hdrPrev, "-"+strconv.Itoa(len(p.msgs)-st.lastMsg))
			case st.head.last > 0:
				h.Set(hdrPrev, u64(st.head.last))
			}
		}
		h.Set(hdrVersion, u64(version))
		h.Set(hdrType, typ)
		h.Set(hdrID, id)
		h.Set(hdrDataLen, strconv.Itoa(len(data)))
		if ev.Timed {
			t := int64(binary.LittleEndian.Uint64(rec[32:]))
			t = max(t, lastTime)
			lastTime = t
			h.Set(hdrTime, strconv.FormatInt(t, 10))
			p.timed[i] = true
			p.results[i].Time = time.Unix(0, t).UTC()
		}
		if !noMsgID {
			h.Set(hdrMsgID, msgID(stream, []byte(id)))
		}
		if !st.checked && !covered[stream] {
			// A stream's first message checks the stream itself.
			h.Set(hdrExpSubjSeq, u64(st.head.seq))
			st.checked = true
		} else if len(pendingGuards) > 0 {
			g := pendingGuards[0]
			pendingGuards = pendingGuards[1:]
			h.Set(hdrExpSubjSeq, u64(g.seq))
			h.Set(hdrExpSubjName, g.subject)
		}
		if ev.Marker == 0 {
			st.lastMsg = len(p.msgs)
		}
		p.results[i].Stream, p.results[i].Version, p.results[i].ID = stream, version, id
		p.msgs = append(p.msgs, &nats.Msg{Subject: s.subjectOf(stream), Header: h, Data: payload(data, meta)})
		p.sent = append(p.sent, i)
	}
	if len(p.msgs) == 0 {
		for i, j := range p.copies {
			p.results[i] = p.results[j]
			p.results[i].Duplicate = true
		}
		return p, nil
	}
	if len(pendingGuards) > 0 || timed || global {
		if !global && !timed {
			return nil, errNeedGlobal
		}
		p.msgs[0].Header.Set(hdrExpLastSeq, u64(last))
	}
	if cond != nil {
		if err := s.checkCondition(ctx, cond, filters); err != nil {
			return nil, err
		}
	}
	if len(p.msgs) > 1 {
		id := nuid.Next()
		for k, m := range p.msgs {
			m.Header.Set(hdrBatchID, id)
			m.Header.Set(hdrBatchSeq, strconv.Itoa(k+1))
			m.Header.Set(hdrBatchLen, strconv.Itoa(len(p.msgs)))
		}
		p.msgs[len(p.msgs)-1].Header.Set(hdrBatchCommit, "1")
	}
	return p, nil
}

// errDuplicateAck: the server took a message for a duplicate of one its
// dedupe window holds, but the id look-up had not found it stored.
var errDuplicateAck = errors.New("natsjs: duplicate acknowledgement")

// send publishes the plan's messages and completes its results.
func (s *Store) send(p *plan) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if max := s.nc.MaxPayload(); max > 0 {
		for _, m := range p.msgs {
			if n := msgSize(m); n > max {
				return fmt.Errorf("%w: an event of %d bytes with evt's headers is more than the nats server's max_payload of %d bytes (the server's operator raises max_payload; evt's events go up to 1 MiB)", log.ErrTooLarge, n, max)
			}
		}
	}
	last := p.msgs[len(p.msgs)-1]
	for _, m := range p.msgs[:len(p.msgs)-1] {
		// The batch's messages before the commit need no answer: the
		// server stages them and checks everything at the commit.
		if err := s.nc.PublishMsg(m); err != nil {
			return err
		}
	}
	ack, err := s.publish(ctx, last)
	if err != nil {
		return err
	}
	if ack.Duplicate {
		return errDuplicateAck
	}
	first := ack.Seq - uint64(len(p.msgs)) + 1
	for k, i := range p.sent {
		p.results[i].Position = first + uint64(k)
	}
	// The server stamps the times of events that carry none of their own.
	need := false
	for _, i := range p.sent {
		if !p.timed[i] {
			need = true
			break
		}
	}
	if need {
		times, err := s.stamps(ctx, first, ack.Seq)
		if err != nil {
			return fmt.Errorf("%w (the append was stored at %d..%d)", err, first, ack.Seq)
		}
		for k, i := range p.sent {
			if !p.timed[i] {
				p.results[i].Time = times[k]
			}
		}
	}
	for i, j := range p.copies {
		p.results[i] = p.results[j]
		p.results[i].Duplicate = true
	}
	return nil
}

// stamps returns the server's times of the messages first..last.
func (s *Store) stamps(ctx context.Context, first, last uint64) ([]time.Time, error) {
	if last-first < 64 {
		// A few leader gets: no consumer to make (on a cluster, one is
		// a proposal to the meta leader), and they see the append at once.
		times := make([]time.Time, 0, last-first+1)
		for seq := first; seq <= last; seq++ {
			m, err := s.getMsg(ctx, msgGetRequest{Seq: seq, NoHeader: true})
			if err != nil {
				return nil, s.wrap("read the time of the append", err)
			}
			if m == nil {
				return nil, fmt.Errorf("nats: message %d is gone right after its append", seq)
			}
			times = append(times, m.Time.UTC())
		}
		return times, nil
	}
	if s.replicas <= 1 && s.direct {
		times, err := s.directStamps(ctx, first, last)
		if err != nil {
			return nil, s.wrap("read the times of the append", err)
		}
		return times, nil
	}
	times := make([]time.Time, 0, last-first+1)
	err := s.scanRange(ctx, s.root+".>", first, last, true, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		times = append(times, meta.Timestamp.UTC())
		return true, nil
	})
	if err != nil {
		return nil, s.wrap("read the times of the append", err)
	}
	if len(times) != int(last-first+1) {
		return nil, fmt.Errorf("nats: read %d of the %d messages of the append back", len(times), last-first+1)
	}
	return times, nil
}

// storedIDs looks for ids among the events of stream stored within
// lookback (all of them if negative), up to its head.
func (s *Store) storedIDs(ctx context.Context, stream string, h head, ids map[string]bool, lookback time.Duration) (map[string]log.Result, error) {
	found := map[string]log.Result{}
	start := uint64(1)
	if h.cutAt > 0 {
		start = h.cutAt
	}
	if lookback > 0 {
		// Events older than the look-back are not looked at: the
		// server's own time of the message decides, as that is when the
		// append happened.
		m, err := s.firstSince(ctx, s.subjectOf(stream), time.Now().Add(-lookback))
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return found, nil
		}
		start = max(start, m)
	}
	err := s.scanRange(ctx, s.subjectOf(stream), start, h.seq, true, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		e, ok := s.decode(m.Subject(), meta.Sequence.Stream, m.Headers(), nil, meta.Timestamp)
		if !ok || e.mark != "" || e.version <= h.cut || !ids[e.id] {
			return true, nil
		}
		found[e.id] = log.Result{Position: e.seq, Stream: stream, Version: e.version, ID: e.id, Time: time.Unix(0, e.time).UTC()}
		return len(found) < len(ids), nil
	})
	if err != nil {
		return nil, s.wrap("look up the ids of "+stream, err)
	}
	return found, nil
}

// msgSize is the size of a message as the server counts it against
// max_payload: the headers as sent ("NATS/1.0\r\n", "Key: Value\r\n"
// each, "\r\n") and the payload.
func msgSize(m *nats.Msg) int64 {
	n := len("NATS/1.0\r\n\r\n") + len(m.Data)
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return int64(n)
}
