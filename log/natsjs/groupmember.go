package natsjs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// Timing of members.
const (
	// heartbeatEvery is how often a member renews its heartbeat key,
	// which lives heartbeatTTL: a member that stops renewing it (killed,
	// cut off) is dead that long after its last renewal, and its leases
	// go to the others at their next lease (CLI.md: at most 5 s).
	heartbeatEvery = time.Second
	heartbeatTTL   = 3 * time.Second
	// pullWait is how long a pull waits on a partition whose one event
	// is out (held, or waiting out a nack's backoff) before the server
	// ends it: partitions are asked at once, so a lease pays it once,
	// and only when a partition it asks is busy (partitions that live
	// members hold, by their held records, are not asked). It also
	// bounds how long a due redelivery may take to arrive.
	pullWait = 50 * time.Millisecond
	// waitTick bounds Wait: the server redelivers expired and backed-off
	// events without a message anyone could watch.
	waitTick = 500 * time.Millisecond
)

// Records of the meta bucket (keys under g.<group>).
type (
	// failRec (f.<pos>) counts the failed deliveries of an event: a
	// nack, an expired lease, a dead member. The server's own count also
	// counts returns, which evt does not.
	failRec struct {
		D      int    `json:"d"`
		Reason string `json:"reason"`
	}
	// heldEntry is one lease in a member's held record (l.h.<member>):
	// what another member needs to give it back once the member died.
	heldEntry struct {
		Reply string `json:"r"`
		D     int    `json:"d"`
	}
	// manualRec (a.<pos>) is a manual-ack lease: evt ack answers it.
	manualRec struct {
		Reply    string    `json:"r"`
		Deadline time.Time `json:"deadline"`
		Part     int       `json:"part"`
	}
	// retryRec (l.q.r.<pos>) is a parked event queued again by Retry:
	// JetStream cannot redeliver a terminated message, so the record is
	// its lease.
	retryRec struct {
		Stream    string    `json:"stream"`
		Type      string    `json:"type"`
		D         int       `json:"d"`
		Member    string    `json:"member,omitempty"`
		Manual    bool      `json:"manual,omitempty"`
		Deadline  time.Time `json:"deadline,omitzero"`
		NotBefore time.Time `json:"not_before,omitzero"`
		Reason    string    `json:"reason,omitempty"`
	}
	// parkRec (p.<pos>) is a parked event.
	parkRec struct {
		Stream     string    `json:"stream"`
		Type       string    `json:"type"`
		Deliveries int       `json:"deliveries"`
		Reason     string    `json:"reason"`
		At         time.Time `json:"at"`
	}
	// resetRec (l.q.x.<partition>) is a reset waiting for the event its
	// partition's member holds (see Reset).
	resetRec struct {
		To uint64 `json:"to"`
	}
)

func (g *Group) key(rest ...string) string { return gkey(g.cfg.Name, rest...) }

func posKey(p uint64) string { return strconv.FormatUint(p, 10) }

// live is what the group's small keys say now.
type live struct {
	members map[string]bool // heartbeats
	held    []string        // members with a held record
	retries []uint64
	resets  map[int]bool
	epoch   uint64 // the newest stir (see stirAll)
}

// stirAll tells every member that partitions may have events again that
// no message shows (a consumer reset): a key l.q.e.<ns> that lives a few
// seconds, past the next heartbeat's stir.
func (g *Group) stirAll(ctx context.Context) error {
	return g.s.kvPutJSON(ctx, g.key("l", "q", "e", strconv.FormatInt(time.Now().UnixNano(), 10)), struct{}{}, heartbeatTTL)
}

// live lists the group's l.> keys (one request).
func (g *Group) live(ctx context.Context) (*live, error) {
	keys, err := g.s.kvKeys(ctx, g.key("l", ">"))
	if err != nil {
		return nil, err
	}
	lv := &live{members: map[string]bool{}, resets: map[int]bool{}}
	pre := g.key("l", "")
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, pre)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(rest, "m."):
			lv.members[unkeyToken(rest[2:])] = true
		case strings.HasPrefix(rest, "h."):
			lv.held = append(lv.held, unkeyToken(rest[2:]))
		case strings.HasPrefix(rest, "q.r."):
			if p, err := strconv.ParseUint(rest[4:], 10, 64); err == nil {
				lv.retries = append(lv.retries, p)
			}
		case strings.HasPrefix(rest, "q.e."):
			if e, err := strconv.ParseUint(rest[4:], 10, 64); err == nil {
				lv.epoch = max(lv.epoch, e)
			}
		case strings.HasPrefix(rest, "q.x."):
			if i, err := strconv.Atoi(rest[4:]); err == nil {
				lv.resets[i] = true
			}
		}
	}
	sort.Slice(lv.retries, func(i, j int) bool { return lv.retries[i] < lv.retries[j] })
	return lv, nil
}

// applyReset carries out the reset waiting for partition i, now that
// its held event is done: it replaces that event's ack.
// It reports false if there was none (another process applied it).
func (g *Group) applyReset(ctx context.Context, i int) (bool, error) {
	var r resetRec
	if _, ok, err := g.s.kvGetJSON(ctx, g.key("l", "q", "x", strconv.Itoa(i)), &r); err != nil || !ok {
		return false, err
	}
	if err := g.s.resetConsumer(ctx, g.names[i], r.To); err != nil {
		return false, err
	}
	if err := g.s.kvPurge(ctx, g.key("l", "q", "x", strconv.Itoa(i))); err != nil {
		return false, err
	}
	return true, g.stirAll(ctx)
}

// park records an event the group gives up on.
func (g *Group) park(ctx context.Context, p uint64, stream, typ string, d int, reason string) error {
	rec := parkRec{Stream: stream, Type: typ, Deliveries: d, Reason: reason, At: time.Now().UTC()}
	if err := g.s.kvPutJSON(ctx, g.key("p", posKey(p)), rec, 0); err != nil {
		return err
	}
	return g.s.kvPurge(ctx, g.key("f", posKey(p)))
}

// reclaim gives back the leases of members whose heartbeat is gone:
// their held records are claimed by compare-and-set (so two members do
// not both give one back), each delivery counted as failed, then nak'd.
func (g *Group) reclaim(ctx context.Context, lv *live, self string) error {
	s := g.s
	for _, id := range lv.held {
		if lv.members[id] || id == self {
			continue
		}
		key := g.key("l", "h", keyToken(id))
		var held map[string]heldEntry
		rev, ok, err := s.kvGetJSON(ctx, key, &held)
		if err != nil {
			return err
		}
		if !ok || len(held) == 0 {
			if ok {
				s.kvPurge(ctx, key)
			}
			continue
		}
		if won, err := s.kvUpdateJSON(ctx, key, map[string]heldEntry{}, rev); err != nil || !won {
			if err != nil {
				return err
			}
			continue
		}
		var replies []string
		for pos, e := range held {
			p, _ := strconv.ParseUint(pos, 10, 64)
			if err := s.kvPutJSON(ctx, g.key("f", posKey(p)), failRec{D: e.D, Reason: "member " + id + " died"}, 0); err != nil {
				return err
			}
			replies = append(replies, e.Reply)
		}
		if err := s.ackReplies(ctx, replies, []byte("-NAK")); err != nil {
			return err
		}
		if err := s.kvPurge(ctx, key); err != nil {
			return err
		}
	}
	return nil
}

// Member is one live member of a group (log.Member).
type Member struct {
	g      *Group
	id     string
	manual bool

	writing sync.Mutex        // held over writing the held record
	mu      sync.Mutex        // guards held and dirty (lease timers run apart)
	held    map[uint64]*lease // the leases this member answers for
	dirty   bool              // held changed since the held record was written
	backoff []nacked          // this member's nacks waiting out their backoffs
	// quiet holds the partitions whose last pull found nothing: leases
	// skip them until an append to one of their subjects, an answer on
	// their ack subjects (seen by Wait's subscriptions) or the next
	// heartbeat (the server's own redeliveries send no message).
	quiet map[int]bool
	// drained holds the partitions whose last delivery said nothing was
	// left after it: asked again only after an append or a nak there.
	drained map[int]bool
	epoch   uint64 // the newest stir seen (Group.stirAll)
	// peek is, by partition, the position of the event this member last
	// gave back there unhandled (a lease's surplus): a lower bound of
	// the partition's head (see leaseNew).
	peek map[int]uint64
	// backoffPart is when this member's nack's backoff ends, by
	// partition: a lease does not ask a partition before.
	backoffPart map[int]time.Time
	// news is how many skipped events the last Lease was the first to
	// announce (Skipped).
	news atomic.Uint64

	wake chan struct{}
	subs []*nats.Subscription
	stop chan struct{}
	done chan struct{}
}

// lease is one event handed to this member.
type lease struct {
	pos      uint64
	part     int
	reply    string // the delivery's ack subject ("" for a retried event)
	stream   string
	typ      string
	d        int // deliveries, as evt counts them
	failed   bool
	deadline time.Time
	timer    *time.Timer
	retry    bool // a retried event: its record in the bucket is the lease
}

var _ log.Member = (*Member)(nil)

// joined counts the members this process made, to tell them apart.
var joined atomic.Int64

// memberID is HOST:PID, with .N for a process's later members.
func memberID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	id := host + ":" + strconv.Itoa(os.Getpid())
	if n := joined.Add(1); n > 1 {
		id += "." + strconv.FormatInt(n, 10)
	}
	return id
}

// Join writes the member's heartbeat before it returns, so that others
// never take it for dead, and starts renewing it (log.Group).
func (g *Group) Join(ctx context.Context, opts log.MemberOptions) (log.Member, error) {
	if err := g.ensureTTL(ctx); err != nil {
		return nil, err
	}
	if _, err := g.s.consumerInfo(ctx, g.names[0]); err != nil {
		return nil, err
	}
	m := &Member{g: g, id: memberID(), manual: opts.ManualAck, held: map[uint64]*lease{}, backoffPart: map[int]time.Time{}, quiet: map[int]bool{}, drained: map[int]bool{}, peek: map[int]uint64{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := m.beat(ctx); err != nil {
		return nil, err
	}
	// Wake Wait on appends, on any answer to the group's deliveries
	// (another member's ack may free a partition) and on retries and
	// resets. Subscribed before the first lease: what happens between a
	// lease that found nothing and the Wait after it wakes the Wait.
	notify := func(msg *nats.Msg) {
		m.stir(msg.Subject, msg.Data)
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
	subjects := []string{g.s.filterOf(g.sel), g.s.kvSubject(g.key("l", "q", ">"))}
	for _, c := range g.names {
		subjects = append(subjects, "$JS.ACK."+g.s.name+"."+c+".>")
	}
	for _, subj := range subjects {
		sub, err := g.s.nc.Subscribe(subj, notify)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("nats: %w", err)
		}
		m.subs = append(m.subs, sub)
	}
	go m.heartbeat()
	return m, nil
}

// stir forgets that a partition was quiet when a message on subject
// may have changed it: an append there (new events), any answer on its
// ack subjects (another member's ack frees it; a nak, the only answer
// that puts an event back, also ends drained); a subject it cannot
// place (a retry, a reset) stirs every partition.
func (m *Member) stir(subject string, body []byte) {
	g := m.g
	part, nak := -1, true
	if strings.HasPrefix(subject, "$JS.ACK.") {
		if cons, _, _, _, ok := parseAckReply(subject); ok {
			part, nak = partitionOfConsumer(cons), bytes.HasPrefix(body, []byte("-NAK"))
		}
	} else if stream := g.s.streamOf(subject); stream != "" {
		part = partitionOf(stream, g.parts)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if part < 0 {
		clear(m.quiet)
		clear(m.drained)
		return
	}
	delete(m.quiet, part)
	if nak {
		delete(m.drained, part)
	}
}

func (m *Member) beat(ctx context.Context) error {
	return m.g.s.kvPutJSON(ctx, m.g.key("l", "m", keyToken(m.id)), map[string]string{"id": m.id}, heartbeatTTL)
}

func (m *Member) heartbeat() {
	defer close(m.done)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			ctx, cancel := m.g.s.ctx()
			m.beat(ctx) // a missed beat is retried in a second; three in a row and others take this member for dead
			cancel()
			m.mu.Lock()
			clear(m.quiet) // the server may have redelivered an expired lease there
			clear(m.drained)
			clear(m.peek)
			m.mu.Unlock()
		}
	}
}

// ID is HOST:PID (log.Member).
func (m *Member) ID() string { return m.id }

// take removes the leases on positions this member still answers for
// (held, deadline not passed) and returns them.
func (m *Member) take(positions []uint64) []*lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	var out []*lease
	for _, p := range positions {
		l := m.held[p]
		if l == nil {
			continue
		}
		delete(m.held, p)
		m.dirty = true
		l.timer.Stop()
		if now.Before(l.deadline) {
			out = append(out, l)
		}
	}
	return out
}

// expire ends a lease at its deadline: the server hands the event out
// again by itself; evt counts the failed delivery.
func (m *Member) expire(l *lease) {
	m.mu.Lock()
	if m.held[l.pos] != l {
		m.mu.Unlock()
		return
	}
	delete(m.held, l.pos)
	m.dirty = true
	m.mu.Unlock()
	if l.retry {
		return // its record has the deadline: the next lease takes it back
	}
	ctx, cancel := m.g.s.ctx()
	defer cancel()
	m.g.s.kvPutJSON(ctx, m.g.key("f", posKey(l.pos)), failRec{D: l.d, Reason: "not acked within " + m.g.cfg.AckWait.String()}, 0)
	m.writeHeld(ctx)
}

func (m *Member) hold(l *lease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held[l.pos] = l
	m.dirty = true
	l.timer = time.AfterFunc(time.Until(l.deadline), func() { m.expire(l) })
}

// ack answers leases as handled; a partition with a reset waiting for
// its held event is reset instead.
func (m *Member) ack(ctx context.Context, lv *live, ls []*lease) error {
	g, s := m.g, m.g.s
	var replies []string
	for _, l := range ls {
		switch {
		case l.retry:
			if err := m.endRetry(ctx, l, func(r *retryRec) bool { return false }); err != nil {
				return err
			}
		case lv != nil && lv.resets[l.part] && g.parts > 1:
			delete(lv.resets, l.part)
			applied, err := g.applyReset(ctx, l.part)
			if err != nil {
				return err
			}
			if !applied {
				replies = append(replies, l.reply)
			}
			m.mu.Lock()
			delete(m.drained, l.part) // the reset put its events back
			delete(m.quiet, l.part)
			m.mu.Unlock()
		default:
			replies = append(replies, l.reply)
		}
	}
	if err := s.ackReplies(ctx, replies, []byte("+ACK")); err != nil {
		return err
	}
	// An acked partition has room for its next event: a pull that found
	// it full (one in flight) said nothing of what waits behind it. Its
	// ack subject's stir comes too, but later than the next lease.
	m.mu.Lock()
	for _, l := range ls {
		delete(m.quiet, l.part)
	}
	m.mu.Unlock()
	for _, l := range ls {
		if l.failed && !l.retry {
			if err := s.kvPurge(ctx, g.key("f", posKey(l.pos))); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ack answers events this member was handed as handled (log.Member).
func (m *Member) Ack(ctx context.Context, positions ...uint64) error {
	ls := m.take(positions)
	if len(ls) == 0 {
		return m.writeHeld(ctx)
	}
	var lv *live
	if m.g.cfg.Ordering != "none" {
		var err error
		if lv, err = m.g.live(ctx); err != nil {
			return err
		}
	}
	if err := m.ack(ctx, lv, ls); err != nil {
		return err
	}
	return m.writeHeld(ctx)
}

// endRetry updates a retried event's record if this member still holds
// it: change returns false to remove the record (done), true to store it.
func (m *Member) endRetry(ctx context.Context, l *lease, change func(r *retryRec) bool) error {
	s := m.g.s
	key := m.g.key("l", "q", "r", posKey(l.pos))
	var r retryRec
	rev, ok, err := s.kvGetJSON(ctx, key, &r)
	if err != nil || !ok || r.Member != m.id {
		return err
	}
	if !change(&r) {
		return s.kvPurge(ctx, key)
	}
	_, err = s.kvUpdateJSON(ctx, key, r, rev)
	return err
}

// nacked is an event this member nacked, and when its backoff ends.
type nacked struct {
	pos uint64
	at  time.Time
}

// nackGrace is how long after its backoff a member waits for a nacked
// event to come back; nackPoll how often it asks meanwhile.
const (
	nackGrace = 2 * time.Second
	nackPoll  = 20 * time.Millisecond
)

// backoff is evt's wait before a nacked event goes out again: 200 ms
// after the first failure, doubling, at most 10 s.
func backoff(d int) time.Duration {
	return min(200*time.Millisecond<<min(max(d-1, 0), 6), 10*time.Second)
}

// Nack gives a leased event back after a failure (log.Member): parked
// (+TERM) once it used up its deliveries, else nak'd with evt's backoff,
// its failure counted in f.<pos>.
func (m *Member) Nack(ctx context.Context, p uint64, reason string) error {
	defer m.writeHeld(ctx)
	ls := m.take([]uint64{p})
	if len(ls) == 0 {
		return nil
	}
	l, g, s := ls[0], m.g, m.g.s
	if l.d >= g.cfg.MaxDeliver {
		if err := g.park(ctx, p, l.stream, l.typ, l.d, reason); err != nil {
			return err
		}
		if l.retry {
			return s.kvPurge(ctx, g.key("l", "q", "r", posKey(p)))
		}
		return s.ackReplies(ctx, []string{l.reply}, []byte("+TERM"))
	}
	delay := backoff(l.d)
	if l.retry {
		return m.endRetry(ctx, l, func(r *retryRec) bool {
			r.Member, r.Reason, r.NotBefore = "", reason, time.Now().Add(delay)
			return true
		})
	}
	if err := s.kvPutJSON(ctx, g.key("f", posKey(p)), failRec{D: l.d, Reason: reason}, 0); err != nil {
		return err
	}
	if err := s.ackReplies(ctx, []string{l.reply}, fmt.Appendf(nil, `-NAK {"delay":%d}`, delay.Nanoseconds())); err != nil {
		return err
	}
	m.mu.Lock()
	m.backoff = append(m.backoff, nacked{pos: p, at: time.Now().Add(delay + 5*time.Millisecond)})
	m.backoffPart[l.part] = time.Now().Add(delay)
	m.mu.Unlock()
	return nil
}

// giveBack returns leases unhandled, not counting the delivery: a plain
// nak (the failure records decide the count, and a return writes none).
func (m *Member) giveBack(ctx context.Context, ls []*lease) error {
	var replies []string
	for _, l := range ls {
		if l.retry {
			if err := m.endRetry(ctx, l, func(r *retryRec) bool { r.Member, r.D = "", r.D-1; return true }); err != nil {
				return err
			}
			continue
		}
		replies = append(replies, l.reply)
	}
	return m.g.s.ackReplies(ctx, replies, []byte("-NAK"))
}

// Return gives leased events back unhandled (log.Member).
func (m *Member) Return(ctx context.Context, positions ...uint64) error {
	if err := m.giveBack(ctx, m.take(positions)); err != nil {
		return err
	}
	return m.writeHeld(ctx)
}

// Renew extends a held lease by a full ack wait (+WPI, which restarts
// the server's ack wait) (log.Member).
func (m *Member) Renew(ctx context.Context, p uint64) (time.Time, bool, error) {
	m.mu.Lock()
	l := m.held[p]
	m.mu.Unlock()
	now := time.Now()
	if l == nil || !now.Before(l.deadline) {
		return time.Time{}, false, nil
	}
	deadline := now.Add(m.g.cfg.AckWait)
	if l.retry {
		if err := m.endRetry(ctx, l, func(r *retryRec) bool { r.Deadline = deadline; return true }); err != nil {
			return time.Time{}, false, err
		}
	} else if err := m.g.s.ackReplies(ctx, []string{l.reply}, []byte("+WPI")); err != nil {
		return time.Time{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[p] != l {
		return time.Time{}, false, nil // expired meanwhile
	}
	l.deadline = deadline
	l.timer.Reset(time.Until(deadline))
	return deadline, true, nil
}

// Wait returns on an append to the selection, an answer to any of the
// group's deliveries, a retry or reset, or after waitTick (the server
// redelivers without a message to watch) (log.Member).
func (m *Member) Wait(ctx context.Context) error {
	t := time.NewTimer(waitTick)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.wake:
		return nil
	case <-t.C:
		return nil
	}
}

// Close gives the member's leases back (its manual ones wait for evt
// ack), stops its heartbeat and removes its keys (log.Member).
func (m *Member) Close() error {
	for _, sub := range m.subs {
		sub.Unsubscribe()
	}
	m.subs = nil
	select {
	case <-m.stop:
		return nil // closed already
	default:
	}
	close(m.stop)
	<-m.done
	m.mu.Lock()
	var all []uint64
	for p := range m.held {
		all = append(all, p)
	}
	m.mu.Unlock()
	ctx, cancel := m.g.s.ctx()
	defer cancel()
	err := m.giveBack(ctx, m.take(all))
	if err2 := m.g.s.kvPurge(ctx, m.g.key("l", "*", keyToken(m.id))); err == nil {
		err = err2
	}
	return err
}

// candidate is a delivery a lease may hand out.
type candidate struct {
	d      delivered
	e      entry
	count  int
	failed bool
}

// Lease hands out up to n events (log.Member): first retried events,
// then one pull per partition not held by this member, all sent at
// once; what comes is sorted by position and what is more than n given
// back. A stream's next event waits for its partition's one event in
// flight (MaxAckPending 1), so chain changes nothing.
func (m *Member) Lease(ctx context.Context, n int, chain bool, acks ...uint64) ([]log.Delivery, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	g := m.g
	lv, err := g.live(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	if err := m.ack(ctx, lv, m.take(acks)); err != nil {
		return nil, time.Time{}, err
	}
	if err := g.reclaim(ctx, lv, m.id); err != nil {
		return nil, time.Time{}, err
	}
	out := []log.Delivery{}
	var retryAt time.Time
	if out, retryAt, err = m.leaseRetries(ctx, lv, n, out); err != nil {
		return nil, time.Time{}, err
	}
	rv, err := g.s.retView(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	var hid []passed
	if len(out) < n {
		if out, hid, err = m.leaseNew(ctx, lv, rv, n, out); err != nil {
			return nil, time.Time{}, err
		}
	}
	m.news.Store(0)
	if rv.limited {
		// Count what retention hid from this lease (groupskip.go), and
		// announce what is counted and not announced yet.
		more := len(hid) > 0
		if !more {
			if more, err = g.unannounced(ctx); err != nil {
				return out, time.Time{}, err
			}
		}
		if more {
			news, err := g.countPassed(ctx, hid)
			if err != nil {
				return out, time.Time{}, err
			}
			m.news.Store(news)
		}
	}
	if err := m.writeHeld(ctx); err != nil {
		return out, time.Time{}, err
	}
	// A nacked event is waited for until it comes back, not only until
	// its backoff ends: the server redelivers it a little after (its
	// redelivery timer, then the next pull), and --once must not stop in
	// between (CLI.md: it waits out retries). One that another member
	// took instead is waited for no longer than nackGrace.
	m.mu.Lock()
	now, kept := time.Now(), m.backoff[:0]
	for _, b := range m.backoff {
		if slices.ContainsFunc(out, func(d log.Delivery) bool { return d.Event.Position == b.pos }) || now.After(b.at.Add(nackGrace)) {
			continue
		}
		kept = append(kept, b)
		t := b.at
		if !t.After(now) {
			t = now.Add(nackPoll)
		}
		if retryAt.IsZero() || t.Before(retryAt) {
			retryAt = t
		}
	}
	m.backoff = kept
	m.mu.Unlock()
	return out, retryAt, nil
}

// writeHeld stores the member's held record when it changed: what
// another member gives back if this one dies.
func (m *Member) writeHeld(ctx context.Context) error {
	m.writing.Lock() // one write at a time: an older record never lands last
	defer m.writing.Unlock()
	m.mu.Lock()
	if !m.dirty || m.manual {
		m.mu.Unlock()
		return nil
	}
	rec := map[string]heldEntry{}
	for p, l := range m.held {
		if !l.retry {
			rec[posKey(p)] = heldEntry{Reply: l.reply, D: l.d}
		}
	}
	m.dirty = false
	m.mu.Unlock()
	return m.g.s.kvPutJSON(ctx, m.g.key("l", "h", keyToken(m.id)), rec, 0)
}

// leaseRetries leases retried events: waiting ones whose backoff is
// over, and those whose holder's deadline passed or who died.
func (m *Member) leaseRetries(ctx context.Context, lv *live, n int, out []log.Delivery) ([]log.Delivery, time.Time, error) {
	g, s := m.g, m.g.s
	var retryAt time.Time
	for _, p := range lv.retries {
		if len(out) >= n {
			break
		}
		key := g.key("l", "q", "r", posKey(p))
		var r retryRec
		rev, ok, err := s.kvGetJSON(ctx, key, &r)
		if err != nil {
			return nil, retryAt, err
		}
		if !ok {
			continue
		}
		now := time.Now()
		if r.Member != "" {
			if r.Member == m.id || now.Before(r.Deadline) && (r.Manual || lv.members[r.Member]) {
				continue
			}
			if r.Reason = "not acked within " + g.cfg.AckWait.String(); now.Before(r.Deadline) {
				r.Reason = "member " + r.Member + " died"
			}
			if r.D >= g.cfg.MaxDeliver {
				if err := g.park(ctx, p, r.Stream, r.Type, r.D, r.Reason); err != nil {
					return nil, retryAt, err
				}
				if err := s.kvPurge(ctx, key); err != nil {
					return nil, retryAt, err
				}
				continue
			}
		} else if now.Before(r.NotBefore) {
			if retryAt.IsZero() || r.NotBefore.Before(retryAt) {
				retryAt = r.NotBefore
			}
			continue
		}
		msg, err := s.getMsg(ctx, msgGetRequest{Seq: p})
		if err != nil {
			return nil, retryAt, s.wrap("read a retried event", err)
		}
		var e entry
		if msg != nil {
			e, ok = s.decode(msg.Subject, msg.Seq, msg.Header, msg.Data, msg.Time)
		}
		if msg == nil || !ok || msg.Seq != p {
			if err := s.kvPurge(ctx, key); err != nil { // gone from the log
				return nil, retryAt, err
			}
			continue
		}
		r.Member, r.Manual, r.D, r.Deadline = m.id, m.manual, r.D+1, now.Add(g.cfg.AckWait)
		if won, err := s.kvUpdateJSON(ctx, key, r, rev); err != nil || !won {
			if err != nil {
				return nil, retryAt, err
			}
			continue
		}
		if !m.manual {
			m.hold(&lease{pos: p, stream: r.Stream, typ: r.Type, d: r.D, deadline: r.Deadline, retry: true})
		}
		var rec codec.Record
		e.record(&rec)
		out = append(out, log.Delivery{Event: rec.Event(), Deliveries: r.D, Deadline: r.Deadline})
	}
	return out, retryAt, nil
}

// leaseNew pulls new and redelivered events from the partitions.
func (m *Member) leaseNew(ctx context.Context, lv *live, rv *retView, n int, out []log.Delivery) ([]log.Delivery, []passed, error) {
	var hid []passed
	out, err := m.leaseNewHiding(ctx, lv, rv, n, out, &hid)
	return out, hid, err
}

// leaseNewHiding is leaseNew; hid gets the events it acked because
// retention hides them.
func (m *Member) leaseNewHiding(ctx context.Context, lv *live, rv *retView, n int, out []log.Delivery, hid *[]passed) ([]log.Delivery, error) {
	g, s := m.g, m.g.s
	want := n - len(out)
	mine := map[int]bool{} // partitions held: by this member, then by others
	m.mu.Lock()
	for _, l := range m.held {
		if !l.retry {
			mine[l.part] = true
		}
	}
	m.mu.Unlock()
	// Partitions other live members hold (from their held records) are
	// not asked: a pull on one would wait out pullWait for nothing.
	for _, id := range lv.held {
		if id == m.id || !lv.members[id] || g.parts == 1 {
			continue
		}
		var held map[string]heldEntry
		if _, _, err := s.kvGetJSON(ctx, g.key("l", "h", keyToken(id)), &held); err != nil {
			return nil, err
		}
		for _, e := range held {
			if cons, _, _, _, ok := parseAckReply(e.Reply); ok {
				mine[partitionOfConsumer(cons)] = true
			}
		}
	}
	m.mu.Lock()
	if lv.epoch > m.epoch {
		m.epoch = lv.epoch
		clear(m.quiet)
		clear(m.drained)
		clear(m.peek)
	}
	now := time.Now()
	for i, t := range m.backoffPart {
		if now.Before(t) {
			mine[i] = true // this member's nack is waiting out its backoff there
		} else {
			delete(m.backoffPart, i)
		}
	}
	m.mu.Unlock()
	var probe []int
	for i := range g.parts {
		if g.parts == 1 || !mine[i] {
			probe = append(probe, i)
		}
	}
	// A partition this member gave back an event of (surplus) has that
	// event as its head, or a later one: its position is a lower bound.
	// Such partitions are asked only while they may hold one of the n
	// lowest, so a lease of one does not pull every partition each time.
	var known []int
	peek := map[int]uint64{}
	if g.parts > 1 {
		m.mu.Lock()
		var unknown []int
		for _, i := range probe {
			if p, ok := m.peek[i]; ok {
				known = append(known, i)
				peek[i] = p
			} else {
				unknown = append(unknown, i)
			}
		}
		m.mu.Unlock()
		sort.Slice(known, func(a, b int) bool { return peek[known[a]] < peek[known[b]] })
		take := min(want, len(known))
		probe = append(unknown, known[:take]...)
		known = known[take:]
	}
	start := time.Now() // before the pulls: the server's ack wait starts later
	var cands []candidate
	for round := 0; round < 32 && len(probe) > 0 && (g.parts > 1 || len(cands) < want); round++ {
		// Partitions that came back empty are not asked again until
		// something may have changed there (see quiet): a pull that
		// finds nothing waits out pullWait.
		m.mu.Lock()
		kept := probe[:0]
		for _, i := range probe {
			if !m.quiet[i] && !m.drained[i] {
				kept = append(kept, i)
			}
		}
		m.mu.Unlock()
		probe = kept
		if len(probe) == 0 {
			break
		}
		var reqs []pullReq
		for _, i := range probe {
			b := 1
			if g.parts == 1 {
				b = want - len(cands)
			}
			reqs = append(reqs, pullReq{consumer: g.names[i], batch: b})
		}
		got, idle, err := s.pull(ctx, reqs, pullWait)
		if err != nil {
			m.giveBackDelivered(ctx, got)
			for _, c := range cands {
				m.giveBackDelivered(ctx, []delivered{c.d})
			}
			return nil, err
		}
		m.mu.Lock()
		for _, c := range idle {
			m.quiet[partitionOfConsumer(c)] = true
			delete(m.peek, partitionOfConsumer(c))
		}
		for _, d := range got {
			if d.pending == 0 && g.parts > 1 {
				m.drained[partitionOfConsumer(d.consumer)] = true
			}
		}
		m.mu.Unlock()
		probe = probe[:0]
		again := map[int]bool{}
		var skip, term []string
		var failed map[uint64]bool // positions with a failure record, listed once if needed
		for _, d := range got {
			part := partitionOfConsumer(d.consumer)
			if lv.resets[part] && g.parts > 1 {
				// A reset waited for this partition's event, which its
				// holder gave up: the reset replaces the delivery.
				delete(lv.resets, part)
				applied, err := g.applyReset(ctx, part)
				if err != nil {
					return nil, err
				}
				if applied {
					m.mu.Lock()
					delete(m.drained, part) // the reset put its events back
					delete(m.quiet, part)
					m.mu.Unlock()
					again[part] = true
					continue
				}
			}
			e, ok := s.decode(d.subject, d.seq, d.header, d.data, d.timestamp)
			if !ok || !g.selected(&e) {
				skip = append(skip, d.reply)
				again[part] = true
				continue
			}
			if gone, err := rv.hidden(ctx, &e); err != nil {
				return nil, err
			} else if gone {
				// Retention removed it: reads no longer show it, and
				// the group passes it, counted.
				*hid = append(*hid, passed{part: part, pos: d.seq})
				skip = append(skip, d.reply)
				again[part] = true
				continue
			}
			c := candidate{d: d, e: e, count: 1}
			if d.count > 1 && failed == nil {
				keys, err := s.kvKeys(ctx, g.key("f", ">"))
				if err != nil {
					return nil, err
				}
				failed = map[uint64]bool{}
				for _, k := range keys {
					if p, err := strconv.ParseUint(k[strings.LastIndexByte(k, '.')+1:], 10, 64); err == nil {
						failed[p] = true
					}
				}
			}
			if d.count > 1 && failed[d.seq] {
				var f failRec
				if _, ok, err := s.kvGetJSON(ctx, g.key("f", posKey(d.seq)), &f); err != nil {
					return nil, err
				} else if ok {
					c.count, c.failed = f.D+1, true
					if f.D >= g.cfg.MaxDeliver {
						if err := g.park(ctx, d.seq, e.stream, e.typ, f.D, f.Reason); err != nil {
							return nil, err
						}
						term = append(term, d.reply)
						again[part] = true
						continue
					}
				}
			}
			cands = append(cands, c)
		}
		if err := s.ackReplies(ctx, skip, []byte("+ACK")); err != nil {
			return nil, err
		}
		if err := s.ackReplies(ctx, term, []byte("+TERM")); err != nil {
			return nil, err
		}
		for i := range again {
			probe = append(probe, i)
		}
		if g.parts == 1 && len(got) > 0 && len(probe) == 0 {
			probe = append(probe, 0) // the pull may have ended early: ask again until it comes back empty
		}
		if g.parts > 1 {
			// Ask the known partitions that may still hold one of the
			// n lowest: below the n-th candidate, or while there are
			// fewer than n.
			sort.Slice(cands, func(i, j int) bool { return cands[i].d.seq < cands[j].d.seq })
			for len(known) > 0 {
				if len(cands)+len(probe) >= want && (len(cands) < want || peek[known[0]] >= cands[want-1].d.seq) {
					break
				}
				probe = append(probe, known[0])
				known = known[1:]
			}
		}
		sort.Ints(probe)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].d.seq < cands[j].d.seq })
	if len(cands) > want {
		var surplus []string
		for _, c := range cands[want:] {
			surplus = append(surplus, c.d.reply)
		}
		if err := s.ackReplies(ctx, surplus, []byte("-NAK")); err != nil {
			return nil, err
		}
		m.mu.Lock()
		for _, c := range cands[want:] {
			m.peek[partitionOfConsumer(c.d.consumer)] = c.d.seq
		}
		m.mu.Unlock()
		cands = cands[:want]
	}
	m.mu.Lock()
	for _, c := range cands {
		delete(m.peek, partitionOfConsumer(c.d.consumer))
	}
	m.mu.Unlock()
	deadline := start.Add(g.cfg.AckWait)
	for _, c := range cands {
		part := partitionOfConsumer(c.d.consumer)
		if m.manual {
			rec := manualRec{Reply: c.d.reply, Deadline: deadline, Part: part}
			if err := s.kvPutJSON(ctx, g.key("a", posKey(c.d.seq)), rec, g.cfg.AckWait); err != nil {
				return nil, err
			}
		} else {
			m.hold(&lease{pos: c.d.seq, part: part, reply: c.d.reply, stream: c.e.stream, typ: c.e.typ, d: c.count, failed: c.failed, deadline: deadline})
		}
		var rec codec.Record
		c.e.record(&rec)
		out = append(out, log.Delivery{Event: rec.Event(), Deliveries: c.count, Deadline: deadline})
	}
	return out, nil
}

// giveBackDelivered naks deliveries a failed lease will not hand out.
func (m *Member) giveBackDelivered(ctx context.Context, ds []delivered) {
	var replies []string
	for _, d := range ds {
		replies = append(replies, d.reply)
	}
	m.g.s.ackReplies(ctx, replies, []byte("-NAK"))
}

// Skipped is how many skipped events this member's last Lease was the
// first to announce (log.Member; groupskip.go).
func (m *Member) Skipped() uint64 { return m.news.Load() }
