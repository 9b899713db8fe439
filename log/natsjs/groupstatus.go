package natsjs

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/log"
)

// view is the group's consumers' state and its small keys, read once.
type view struct {
	infos []*consumerState
	lv    *live
	last  uint64 // the stream's last sequence
}

// view reads the stream's last sequence first and the consumers after
// it, so every event up to last was stored before any consumer's state
// was read. A consumer's pending count is still only eventually right:
// nats-server answers a publish before it tells the stream's consumers
// about the message (stream.go, processJetStreamMsgWithBatch: the pub
// ack, then sigq), so a consumer read just after an append can count
// nothing pending, and the group's position would skip the new event.
// view reads the consumers again until none says nothing is pending
// while an event of its partition follows what it delivered.
func (g *Group) view(ctx context.Context) (*view, error) {
	st, err := g.s.state(ctx)
	if err != nil {
		return nil, g.s.wrap("read the group's position", err)
	}
	v := &view{last: st.Last}
	if v.lv, err = g.live(ctx); err != nil {
		return nil, err
	}
	wait := time.Millisecond
	for deadline := time.Now().Add(time.Second); ; {
		v.infos = v.infos[:0]
		for _, name := range g.names {
			info, err := g.s.consumerInfo(ctx, name)
			if err != nil {
				return nil, err
			}
			v.infos = append(v.infos, info)
		}
		stale, err := g.unsignalled(ctx, v)
		if err != nil {
			return nil, err
		}
		// Past the deadline the counts are taken as they are: the
		// server is that far behind, and a later read will see it.
		if !stale || time.Now().After(deadline) {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// unsignalled reports whether a partition consumer that counts nothing
// pending has an event past the last one it delivered: one the server
// has stored but not yet told the consumer about. It looks at no more
// than 64 events past the lowest such consumer's delivered sequence.
func (g *Group) unsignalled(ctx context.Context, v *view) (bool, error) {
	from := v.last + 1
	for _, info := range v.infos {
		if info.NumPending == 0 && info.Delivered.Stream < v.last {
			from = min(from, info.Delivered.Stream+1)
		}
	}
	filter := g.s.filterOf(g.sel)
	for p, tries := from, 0; p <= v.last && tries < 64; tries++ {
		m, err := g.s.getMsg(ctx, msgGetRequest{Seq: p, NextFor: filter, NoHeader: true})
		if err != nil {
			return false, g.s.wrap("read the group's position", err)
		}
		if m == nil || m.Seq > v.last {
			return false, nil
		}
		if stream := g.s.streamOf(m.Subject); stream != "" {
			info := v.infos[partitionOf(stream, g.parts)]
			if info.NumPending == 0 && m.Seq > info.Delivered.Stream {
				return true, nil
			}
		}
		p = m.Seq + 1
	}
	return false, nil
}

// committed is the group's position: the lowest ack floor (+1) of the
// partitions with events not done, a retried event, or a reset waiting;
// the end of the log when nothing is left (or the furthest reset past
// it).
func (g *Group) committed(ctx context.Context, v *view) (uint64, error) {
	c := v.last + 1
	for _, info := range v.infos {
		c = max(c, info.AckFloor.Stream+1)
	}
	floor := c
	for _, info := range v.infos {
		if info.NumAckPending > 0 || info.NumPending > 0 {
			floor = min(floor, info.AckFloor.Stream+1)
		}
	}
	if floor < c {
		// A partition's ack floor is only a bound: the first event not
		// done is the first selected one past its partition's floor.
		first, err := g.firstNotDone(ctx, v, floor)
		if err != nil {
			return 0, err
		}
		c = min(c, first)
	}
	for _, p := range v.lv.retries {
		c = min(c, p)
	}
	for i := range v.lv.resets {
		var r resetRec
		if _, ok, err := g.s.kvGetJSON(ctx, g.key("l", "q", "x", strconv.Itoa(i)), &r); err != nil {
			return 0, err
		} else if ok {
			c = min(c, r.To)
		}
	}
	return c, nil
}

// firstNotDone walks the selection's events from the lowest ack floor
// to the first selected one past its own partition's floor (bounded:
// past 1000 the floor is the answer).
func (g *Group) firstNotDone(ctx context.Context, v *view, floor uint64) (uint64, error) {
	s := g.s
	filter := s.filterOf(g.sel)
	p := floor
	for tries := 0; p <= v.last && tries < 1000; tries++ {
		m, err := s.getMsg(ctx, msgGetRequest{Seq: p, NextFor: filter, NoHeader: false})
		if err != nil {
			return 0, s.wrap("read the group's position", err)
		}
		if m == nil {
			return v.last + 1, nil
		}
		e, ok := s.decode(m.Subject, m.Seq, m.Header, nil, m.Time)
		if ok && g.selected(&e) && m.Seq > v.infos[partitionOf(e.stream, g.parts)].AckFloor.Stream {
			return m.Seq, nil
		}
		p = m.Seq + 1
	}
	if p > v.last {
		return v.last + 1, nil
	}
	return floor, nil
}

// Position is the group's committed position (log.Group).
func (g *Group) Position(ctx context.Context) (uint64, error) {
	v, err := g.view(ctx)
	if err != nil {
		return 0, err
	}
	return g.committed(ctx, v)
}

// Status summarises the group from its consumers' info and its keys
// (log.Group). Leased counts the members' held records, the manual
// leases and the retried events held.
func (g *Group) Status(ctx context.Context) (log.GroupStatus, error) {
	s := g.s
	v, err := g.view(ctx)
	if err != nil {
		return log.GroupStatus{}, err
	}
	c, err := g.committed(ctx, v)
	if err != nil {
		return log.GroupStatus{}, err
	}
	out := log.GroupStatus{Committed: c, Members: []string{}}
	for id := range v.lv.members {
		out.Members = append(out.Members, id)
	}
	sort.Strings(out.Members)
	for _, info := range v.infos {
		out.Lag += uint64(info.NumAckPending)
	}
	// Leased from the members' held records and the manual leases: the
	// consumers' ack pending also counts events nak'd and not yet
	// delivered again.
	for _, id := range v.lv.held {
		var held map[string]heldEntry
		if _, ok, err := s.kvGetJSON(ctx, g.key("l", "h", keyToken(id)), &held); err != nil {
			return out, err
		} else if ok {
			out.Leased += len(held)
		}
	}
	manual, err := s.kvKeys(ctx, g.key("a", ">"))
	if err != nil {
		return out, err
	}
	out.Leased += len(manual)
	now := time.Now()
	for _, p := range v.lv.retries {
		var r retryRec
		if _, ok, err := s.kvGetJSON(ctx, g.key("l", "q", "r", posKey(p)), &r); err != nil {
			return out, err
		} else if ok {
			out.Lag++
			if r.Member != "" && now.Before(r.Deadline) {
				out.Leased++
			}
		}
	}
	parked, err := s.kvKeys(ctx, g.key("p", ">"))
	if err != nil {
		return out, err
	}
	out.Parked = len(parked)
	rv, err := s.retView(ctx)
	if err != nil {
		return out, err
	}
	var sk skipRec
	if _, _, err := s.kvGetJSON(ctx, g.key("s"), &sk); err != nil {
		return out, err
	}
	out.Skipped = sk.N
	if _, one := g.sel.Stream(); (g.sel.All() || one) && len(g.cfg.Types) == 0 && !rv.limited {
		// The consumers' filters are the selection: their pending
		// counts are exact.
		for _, info := range v.infos {
			out.Lag += info.NumPending
		}
	} else if err := g.countUndelivered(ctx, v, rv, &sk, &out); err != nil {
		return out, err
	}
	if out.Lag > 0 {
		if out.Oldest, err = g.oldest(ctx, rv, c, v.last); err != nil {
			return out, err
		}
	}
	return out, nil
}

// countUndelivered counts into out.Lag the selected events no consumer
// has handed out yet, reading headers from the first undelivered
// position: the filters hold events the selection or the types leave
// out, and retention may hide some. Those it hides are counted into
// out.Skipped instead, if past their partition's frontier
// (groupskip.go): the group will never get them.
func (g *Group) countUndelivered(ctx context.Context, v *view, rv *retView, sk *skipRec, out *log.GroupStatus) error {
	from := v.last + 1
	for _, info := range v.infos {
		if info.NumPending > 0 {
			from = min(from, info.Delivered.Stream+1)
		}
	}
	if from > v.last {
		return nil
	}
	s := g.s
	err := s.scanRange(ctx, s.filterOf(g.sel), from, v.last, true, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		e, ok := s.decode(msg.Subject(), meta.Sequence.Stream, msg.Headers(), nil, meta.Timestamp)
		if !ok || !g.selected(&e) {
			return true, nil
		}
		part := partitionOf(e.stream, g.parts)
		if e.seq <= v.infos[part].Delivered.Stream {
			return true, nil
		}
		gone, err := rv.hidden(ctx, &e)
		switch {
		case err != nil:
			return false, err
		case !gone:
			out.Lag++
		case e.seq >= sk.frontier(part):
			out.Skipped++
		}
		return true, nil
	})
	if err != nil {
		return s.wrap("count the group's lag", err)
	}
	return nil
}

// oldest is the time of the first selected event at or after the
// group's position that retention does not hide.
func (g *Group) oldest(ctx context.Context, rv *retView, from, last uint64) (time.Time, error) {
	s := g.s
	filter := s.filterOf(g.sel)
	for p, tries := from, 0; p <= last && tries < 1000; tries++ {
		m, err := s.getMsg(ctx, msgGetRequest{Seq: p, NextFor: filter})
		if err != nil {
			return time.Time{}, s.wrap("read the group's oldest event", err)
		}
		if m == nil {
			break
		}
		if e, ok := s.decode(m.Subject, m.Seq, m.Header, nil, m.Time); ok && g.selected(&e) {
			if gone, err := rv.hidden(ctx, &e); err != nil {
				return time.Time{}, s.wrap("read the group's oldest event", err)
			} else if !gone {
				return time.Unix(0, e.time).UTC(), nil
			}
		}
		p = m.Seq + 1
	}
	return time.Time{}, nil
}

// Parked lists the parked events (log.Group).
func (g *Group) Parked(ctx context.Context) ([]log.ParkedEvent, error) {
	keys, err := g.s.kvKeys(ctx, g.key("p", ">"))
	if err != nil {
		return nil, err
	}
	out := []log.ParkedEvent{}
	for _, k := range keys {
		p, err := strconv.ParseUint(k[strings.LastIndexByte(k, '.')+1:], 10, 64)
		if err != nil {
			continue
		}
		var r parkRec
		if _, ok, err := g.s.kvGetJSON(ctx, k, &r); err != nil {
			return nil, err
		} else if ok {
			out = append(out, log.ParkedEvent{Position: p, Stream: r.Stream, Type: r.Type, Deliveries: r.Deliveries, Reason: r.Reason, At: r.At})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Position < out[j].Position })
	return out, nil
}

// Retry queues parked events again as retry records, which members
// lease before new events (log.Group).
func (g *Group) Retry(ctx context.Context, positions ...uint64) (int, error) {
	parked, err := g.Parked(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pk := range parked {
		if len(positions) > 0 && !containsPos(positions, pk.Position) {
			continue
		}
		if err := g.s.kvPutJSON(ctx, g.key("l", "q", "r", posKey(pk.Position)), retryRec{Stream: pk.Stream, Type: pk.Type}, 0); err != nil {
			return n, err
		}
		if err := g.s.kvPurge(ctx, g.key("p", posKey(pk.Position))); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func containsPos(ps []uint64, p uint64) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// Reset moves every partition consumer to p with the consumer reset API
// (log.Group). A partition whose one event in flight is at or after p
// is not reset under its holder: a reset record waits until that event
// is done (acked, nacked, given back or expired), and replaces its ack.
// Failure counts start again. With ordering none the one consumer is
// reset at once: an event held at or after p may go to another member
// while its holder still runs it.
func (g *Group) Reset(ctx context.Context, p uint64, dryRun bool) (log.ResetResult, error) {
	s := g.s
	v, err := g.view(ctx)
	if err != nil {
		return log.ResetResult{}, err
	}
	from, err := g.committed(ctx, v)
	if err != nil {
		return log.ResetResult{}, err
	}
	res := log.ResetResult{From: from, To: p}
	lo, hi := min(p, from), max(p, from)
	if hi > lo && lo <= v.last {
		err := s.scanRange(ctx, s.filterOf(g.sel), lo, min(hi-1, v.last), true, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
			if e, ok := s.decode(msg.Subject(), meta.Sequence.Stream, msg.Headers(), nil, meta.Timestamp); ok && g.selected(&e) {
				res.Events++
			}
			return true, nil
		})
		if err != nil {
			return res, s.wrap("count the events a reset goes over", err)
		}
	}
	if dryRun {
		return res, nil
	}
	if err := s.kvPurge(ctx, g.key("f", ">")); err != nil {
		return res, err
	}
	// What the partitions delivered, and what a forward reset skips, is
	// not retention's to count when it is read again (groupskip.go).
	err = g.updateSkips(ctx, func(r *skipRec) {
		for i, info := range v.infos {
			r.raise(i, max(info.Delivered.Stream+1, p))
		}
	})
	if err != nil {
		return res, err
	}
	// A parked event at or after p is delivered again like every other
	// (CLI.md, evt group reset): it is parked no more, and parked again
	// only if it uses up its deliveries again. (The local store keeps it
	// listed until it is handled; here the record goes with the reset,
	// as nothing on the server marks an event as parked.)
	parked, err := g.Parked(ctx)
	if err != nil {
		return res, err
	}
	for _, pk := range parked {
		if pk.Position >= p {
			if err := s.kvPurge(ctx, g.key("p", posKey(pk.Position))); err != nil {
				return res, err
			}
		}
	}
	for i, info := range v.infos {
		key := g.key("l", "q", "x", strconv.Itoa(i))
		if g.parts > 1 && info.NumAckPending > 0 && info.Delivered.Stream >= p {
			if err := s.kvPutJSON(ctx, key, resetRec{To: p}, 0); err != nil {
				return res, err
			}
			continue
		}
		if err := s.resetConsumer(ctx, g.names[i], p); err != nil {
			return res, err
		}
		if v.lv.resets[i] {
			if err := s.kvPurge(ctx, key); err != nil {
				return res, err
			}
		}
	}
	return res, g.stirAll(ctx)
}

// Ack answers manual-ack leases from any process (log.Group): the
// lease's reply subject is in a.<pos> until its deadline; +ACK goes to
// it (or, if a reset waits for its partition, the reset is applied).
func (g *Group) Ack(ctx context.Context, positions ...uint64) (int, error) {
	s := g.s
	lv, err := g.live(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := time.Now()
	for _, p := range positions {
		key := g.key("a", posKey(p))
		var a manualRec
		_, ok, err := s.kvGetJSON(ctx, key, &a)
		if err != nil {
			return n, err
		}
		if ok && now.Before(a.Deadline) {
			applied := false
			if lv.resets[a.Part] && g.parts > 1 {
				delete(lv.resets, a.Part)
				applied, err = g.applyReset(ctx, a.Part)
			}
			if err == nil && !applied {
				err = s.ackReplies(ctx, []string{a.Reply}, []byte("+ACK"))
			}
			if err != nil {
				return n, err
			}
			if err := s.kvPurge(ctx, key); err != nil {
				return n, err
			}
			n++
			continue
		}
		if containsPos(lv.retries, p) {
			rkey := g.key("l", "q", "r", posKey(p))
			var r retryRec
			if _, ok, err := s.kvGetJSON(ctx, rkey, &r); err != nil {
				return n, err
			} else if ok && r.Manual && r.Member != "" && now.Before(r.Deadline) {
				if err := s.kvPurge(ctx, rkey); err != nil {
					return n, err
				}
				n++
			}
		}
	}
	return n, nil
}
