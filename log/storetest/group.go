package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/evtdev/evt/log"
)

// The consumer-group cases: what log.GroupStore, log.Group and
// log.Member promise, seen from one process with several members (what
// only another process can show, a member killed by SIGKILL, is tested
// with real processes by each store's own tests and the CLI's).

// OneInFlightPerLane is implemented by a store whose per-stream ordering
// holds one event in flight per lane, with chain or without: log.Member
// says chain *may* bring several events of one stream in one batch, and
// such a store never does (the JetStream store: MaxAckPending 1 per
// partition consumer). The method says why; the chain case then expects
// the stream's first event alone.
type OneInFlightPerLane interface {
	OneInFlightPerLane() string
}

// groupConfig is a group over every stream, in stream order, with an
// hour's ack wait: the tests decide when leases end.
func groupConfig(name string) log.GroupConfig {
	return log.GroupConfig{Name: name, Selection: "*", AckWait: time.Hour, MaxDeliver: 5, Ordering: "stream",
		Created: time.Now().UTC().Truncate(time.Second)}
}

// group creates a group on the env's store and opens it; a store
// without groups skips the test.
func (e *env) group(cfg log.GroupConfig, start uint64) log.Group {
	e.t.Helper()
	ctx := context.Background()
	if err := e.s.CreateGroup(ctx, cfg, start); err != nil {
		if errors.Is(err, log.ErrUnsupported) {
			e.t.Skipf("no consumer groups: %v", err)
		}
		e.t.Fatalf("CreateGroup %s: %v", cfg.Name, err)
	}
	return e.openGroup(e.s, cfg.Name)
}

// openGroup opens group name on s and closes it at the end of the test.
func (e *env) openGroup(s log.Store, name string) log.Group {
	e.t.Helper()
	g, err := s.OpenGroup(context.Background(), name)
	if err != nil {
		e.t.Fatalf("OpenGroup %s: %v", name, err)
	}
	e.t.Cleanup(func() { g.Close() })
	return g
}

// join makes a member of g, closed at the end of the test (closing it
// earlier is fine).
func (e *env) join(g log.Group, opts log.MemberOptions) log.Member {
	e.t.Helper()
	m, err := g.Join(context.Background(), opts)
	if err != nil {
		e.t.Fatalf("Join: %v", err)
	}
	closed := false
	e.t.Cleanup(func() {
		if !closed {
			m.Close()
		}
	})
	return &closingMember{Member: m, closed: &closed}
}

// closingMember remembers that the test closed it.
type closingMember struct {
	log.Member
	closed *bool
}

func (m *closingMember) Close() error { *m.closed = true; return m.Member.Close() }

// lease leases up to n events and returns their positions and delivery
// counts ("pos" or "pos×deliveries" past the first delivery).
func (e *env) lease(m log.Member, n int, chain bool, acks ...uint64) []string {
	e.t.Helper()
	ds, _, err := m.Lease(context.Background(), n, chain, acks...)
	if err != nil {
		e.t.Fatalf("Lease: %v", err)
	}
	out := []string{}
	for _, d := range ds {
		s := fmt.Sprint(d.Event.Position)
		if d.Deliveries != 1 {
			s += fmt.Sprintf("×%d", d.Deliveries)
		}
		if d.Deadline.IsZero() {
			e.t.Errorf("delivery of %d has no deadline", d.Event.Position)
		}
		out = append(out, s)
	}
	return out
}

func wantLeased(t interface {
	Helper()
	Errorf(string, ...any)
}, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: leased %v, want %v", what, got, want)
	}
}

func (e *env) status(g log.Group) log.GroupStatus {
	e.t.Helper()
	st, err := g.Status(context.Background())
	if err != nil {
		e.t.Fatalf("Status: %v", err)
	}
	return st
}

// testGroups: create, open, list and remove groups, and their errors.
func testGroups(e *env) {
	t := e.t
	ctx := context.Background()
	cfg := groupConfig("billing")
	cfg.Selection, cfg.Types, cfg.AckWait, cfg.MaxDeliver, cfg.Ordering = "order-*", []string{"Placed", "Paid"}, 90*time.Second, 3, "none"
	g := e.group(cfg, 1)
	if got := g.Config(); !got.Created.Equal(cfg.Created) || got.Name != cfg.Name || got.Selection != cfg.Selection ||
		!slices.Equal(got.Types, cfg.Types) || got.AckWait != cfg.AckWait || got.MaxDeliver != cfg.MaxDeliver || got.Ordering != cfg.Ordering {
		t.Errorf("Config: %+v, want %+v", got, cfg)
	}
	wantErr(t, "CreateGroup of a taken name", e.s.CreateGroup(ctx, groupConfig("billing"), 1), log.ErrGroupExists)
	wantErr(t, "CreateGroup of a bad name", e.s.CreateGroup(ctx, groupConfig(".hidden"), 1), log.ErrBadGroupName)
	if err := e.s.CreateGroup(ctx, groupConfig("audit"), 1); err != nil {
		t.Fatal(err)
	}
	names, err := e.s.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"audit", "billing"}) {
		t.Errorf("Groups: %v, want [audit billing]", names)
	}
	// Another handle sees the group at once.
	o := e.another()
	if g2 := e.openGroup(o, "billing"); g2.Config().Selection != "order-*" {
		t.Errorf("another handle's config: %+v", g2.Config())
	}
	_, err = e.s.OpenGroup(ctx, "missing")
	wantErr(t, "OpenGroup of a missing group", err, log.ErrNotFound)
	if err := e.s.RemoveGroup(ctx, "audit"); err != nil {
		t.Fatal(err)
	}
	_, err = o.OpenGroup(ctx, "audit")
	wantErr(t, "OpenGroup of a removed group", err, log.ErrNotFound)
	wantErr(t, "RemoveGroup of a missing group", e.s.RemoveGroup(ctx, "audit"), log.ErrNotFound)
	if names, _ := e.s.Groups(ctx); !slices.Equal(names, []string{"billing"}) {
		t.Errorf("Groups after a remove: %v, want [billing]", names)
	}
}

// testGroupLease: events go out in position order, each to one member at
// a time; acks advance the group; the selection, the types and the start
// position decide what is delivered.
func testGroupLease(e *env) {
	t := e.t
	ctx := context.Background()
	e.append(e.s, ev{stream: "a-1", typ: "T"}, ev{stream: "b-1", typ: "T"}, ev{stream: "a-2", typ: "U"}, ev{stream: "a-1", typ: "T"}, ev{stream: "a-3", typ: "T"})
	cfg := groupConfig("g")
	cfg.Selection, cfg.Types, cfg.Ordering = "a-*", []string{"T"}, "none"
	g := e.group(cfg, 2) // from position 2: a-1@1 is before the start
	m1 := e.join(g, log.MemberOptions{})
	m2 := e.join(e.openGroup(e.another(), "g"), log.MemberOptions{})
	wantLeased(t, "the first member", e.lease(m1, 1, false), "4")
	wantLeased(t, "the second member", e.lease(m2, 10, false), "5")
	wantLeased(t, "the first member again", e.lease(m1, 10, false))
	st := e.status(g)
	if st.Committed != 4 || st.Lag != 2 || st.Leased != 2 || st.Parked != 0 || st.Oldest.IsZero() {
		t.Errorf("Status with two leased: %+v, want committed 4, lag 2, leased 2", st)
	}
	if len(st.Members) != 2 || st.Members[0] == st.Members[1] {
		t.Errorf("Status.Members: %v, want two distinct members", st.Members)
	}
	if err := m2.Ack(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if st := e.status(g); st.Committed != 4 || st.Lag != 1 {
		t.Errorf("Status after the later event's ack: committed %d, lag %d; want 4 and 1 (4 is still leased)", st.Committed, st.Lag)
	}
	wantLeased(t, "an ack with the next lease", e.lease(m1, 10, false, 4))
	st = e.status(g)
	if st.Committed != 6 || st.Lag != 0 || st.Leased != 0 || !st.Oldest.IsZero() {
		t.Errorf("Status once all is acked: %+v, want committed 6 (the end), lag 0", st)
	}
	if p, err := g.Position(ctx); err != nil || p != 6 {
		t.Errorf("Position: %d, %v; want 6", p, err)
	}
	e.append(e.s, ev{stream: "a-4", typ: "T"})
	wantLeased(t, "a new event", e.lease(m2, 10, false), "6")
}

// testGroupOrdering: with ordering stream, a stream's next event waits
// for the ack of the one before (or, with chain, comes in the same batch
// to the same member), while other streams go on.
func testGroupOrdering(e *env) {
	t := e.t
	ctx := context.Background()
	e.append(e.s, ev{stream: "a-1", typ: "T"}, ev{stream: "a-1", typ: "T"}, ev{stream: "b-1", typ: "T"}, ev{stream: "a-1", typ: "T"}, ev{stream: "b-1", typ: "T"})
	g := e.group(groupConfig("g"), 1)
	m1 := e.join(g, log.MemberOptions{})
	m2 := e.join(e.openGroup(e.another(), "g"), log.MemberOptions{})
	wantLeased(t, "without chain", e.lease(m1, 10, false), "1", "3")
	wantLeased(t, "another member while both streams are busy", e.lease(m2, 10, false))
	if err := m1.Ack(ctx, 1); err != nil {
		t.Fatal(err)
	}
	wantLeased(t, "another member after a-1's first is acked", e.lease(m2, 10, false), "2")
	if err := m1.Ack(ctx, 3); err != nil {
		t.Fatal(err)
	}
	wantLeased(t, "with chain", e.lease(m1, 10, true), "5")
	if err := m2.Return(ctx, 2); err != nil {
		t.Fatal(err)
	}
	chained := []string{"2", "4"}
	if one, ok := e.s.(OneInFlightPerLane); ok {
		// Not a weaker promise: chain lets a store hand several events
		// of a stream at once, and this one cannot.
		t.Logf("with chain, a stream's next event still waits for its lane: %s", one.OneInFlightPerLane())
		chained = chained[:1]
	}
	wantLeased(t, "with chain, once a-1 is free", e.lease(m2, 10, true), chained...)

	// Ordering none hands every event out at once.
	n := e.group(func() log.GroupConfig { c := groupConfig("n"); c.Ordering = "none"; return c }(), 1)
	wantLeased(t, "ordering none", e.lease(e.join(n, log.MemberOptions{}), 10, false), "1", "2", "3", "4", "5")
}

// testGroupRedeliver: a nack delivers again after a backoff, counting
// deliveries; after MaxDeliver the event is parked with its reason and
// the group moves on; Retry delivers it again from its first delivery.
// Returning and closing do not count a delivery.
func testGroupRedeliver(e *env) {
	t := e.t
	ctx := context.Background()
	e.append(e.s, ev{stream: "a-1", typ: "T"}, ev{stream: "b-1", typ: "T"})
	cfg := groupConfig("g")
	cfg.MaxDeliver = 2
	g := e.group(cfg, 1)
	m := e.join(g, log.MemberOptions{})
	wantLeased(t, "first", e.lease(m, 1, false), "1")
	if err := m.Return(ctx, 1); err != nil {
		t.Fatal(err)
	}
	wantLeased(t, "after a return", e.lease(m, 1, false), "1")
	if err := m.Nack(ctx, 1, "boom"); err != nil {
		t.Fatal(err)
	}
	ds, retryAt, err := m.Lease(ctx, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Event.Position != 2 {
		t.Fatalf("during the backoff: %d deliveries, want b-1's event (2)", len(ds))
	}
	if retryAt.IsZero() || time.Until(retryAt) > 11*time.Second {
		t.Errorf("retryAt %v during a backoff, want within 10 s", retryAt)
	}
	if err := m.Ack(ctx, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(retryAt) + 10*time.Millisecond)
	wantLeased(t, "after the backoff", e.lease(m, 1, false), "1×2")
	if err := m.Nack(ctx, 1, "boom again"); err != nil {
		t.Fatal(err)
	}
	st := e.status(g)
	if st.Parked != 1 || st.Committed != 3 || st.Lag != 0 {
		t.Errorf("Status after the last delivery failed: %+v, want 1 parked, committed 3", st)
	}
	parked, err := g.Parked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || parked[0].Position != 1 || parked[0].Stream != "a-1" || parked[0].Type != "T" ||
		parked[0].Deliveries != 2 || parked[0].Reason != "boom again" || parked[0].At.IsZero() {
		t.Errorf("Parked: %+v, want a-1's event after 2 deliveries, reason boom again", parked)
	}
	if n, err := g.Retry(ctx, 7); err != nil || n != 0 {
		t.Errorf("Retry of a position not parked: %d, %v; want 0", n, err)
	}
	if n, err := e.openGroup(e.another(), "g").Retry(ctx); err != nil || n != 1 {
		t.Errorf("Retry: %d, %v; want 1", n, err)
	}
	wantLeased(t, "after a retry", e.lease(m, 1, false), "1")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	wantLeased(t, "after its member closed", e.lease(e.join(g, log.MemberOptions{}), 1, false), "1")
}

// testGroupAckWait: a lease not answered within the ack wait goes to
// another member; the first member's late answers change nothing, and
// Renew tells it the lease is gone.
func testGroupAckWait(e *env) {
	t := e.t
	ctx := context.Background()
	e.append(e.s, ev{stream: "a-1", typ: "T"}, ev{stream: "a-1", typ: "T"})
	cfg := groupConfig("g")
	cfg.AckWait = 300 * time.Millisecond
	g := e.group(cfg, 1)
	m1 := e.join(g, log.MemberOptions{})
	m2 := e.join(e.openGroup(e.another(), "g"), log.MemberOptions{})
	leased := time.Now()
	wantLeased(t, "first", e.lease(m1, 1, false), "1")
	dl, ok, err := m1.Renew(ctx, 1)
	switch {
	case err != nil:
		t.Fatal(err)
	case time.Since(leased) > 150*time.Millisecond:
		// The lease may have lapsed before Renew ran (a loaded
		// machine): nothing to judge, the rest of the case still holds.
		t.Logf("Renew ran %v after the lease; not judged", time.Since(leased))
	case !ok || time.Until(dl) < 150*time.Millisecond:
		t.Errorf("Renew of a held lease: %v, %v; want a deadline an ack wait away", dl, ok)
	}
	time.Sleep(400 * time.Millisecond)
	wantLeased(t, "another member after the ack wait", e.lease(m2, 1, false), "1×2")
	if _, ok, err := m1.Renew(ctx, 1); err != nil || ok {
		t.Errorf("Renew of a lease gone to another member: ok %v, %v; want false", ok, err)
	}
	if err := m1.Ack(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := m1.Nack(ctx, 1, "late"); err != nil {
		t.Fatal(err)
	}
	if st := e.status(g); st.Committed != 1 || st.Leased != 1 {
		t.Errorf("after the first member's late ack and nack: committed %d, leased %d; want 1 and 1 (the second member holds it)", st.Committed, st.Leased)
	}
	wantLeased(t, "the stream's next event while its first is held", e.lease(m1, 1, false))
	if err := m2.Ack(ctx, 1); err != nil {
		t.Fatal(err)
	}
	wantLeased(t, "after the holder's ack", e.lease(m1, 1, false), "2")
}

// testGroupManualAck: a manual-ack member's leases outlive it and end by
// Group.Ack from any handle, which acks nothing else.
func testGroupManualAck(e *env) {
	t := e.t
	ctx := context.Background()
	e.append(e.s, ev{stream: "a-1", typ: "T"}, ev{stream: "b-1", typ: "T"}, ev{stream: "c-1", typ: "T"})
	g := e.group(groupConfig("g"), 1)
	manual := e.join(g, log.MemberOptions{ManualAck: true})
	wantLeased(t, "manual", e.lease(manual, 1, false), "1")
	other := e.join(g, log.MemberOptions{})
	wantLeased(t, "another member", e.lease(other, 1, false), "2")
	if err := manual.Close(); err != nil {
		t.Fatal(err)
	}
	g2 := e.openGroup(e.another(), "g")
	if n, err := g2.Ack(ctx, 2, 3); err != nil || n != 0 {
		t.Errorf("Ack of a lease another member acks itself, and of one never delivered: %d, %v; want 0", n, err)
	}
	if st := e.status(g); st.Leased != 2 {
		t.Errorf("leased after the manual member closed: %d, want 2 (its lease waits for an ack)", st.Leased)
	}
	if n, err := g2.Ack(ctx, 1); err != nil || n != 1 {
		t.Errorf("Ack of the manual lease: %d, %v; want 1", n, err)
	}
	if n, err := g2.Ack(ctx, 1); err != nil || n != 0 {
		t.Errorf("Ack again: %d, %v; want 0", n, err)
	}
	if st := e.status(g); st.Leased != 1 || st.Lag != 2 {
		t.Errorf("after the manual ack: leased %d, lag %d; want 1 and 2", st.Leased, st.Lag)
	}
}

// testGroupReset: a dry run counts and changes nothing; a reset back
// delivers again, forward skips; a lease held across a reset stays with
// its holder and is delivered again once it is done.
func testGroupReset(e *env) {
	t := e.t
	ctx := context.Background()
	e.append(e.s, ev{stream: "a-1", typ: "T"}, ev{stream: "b-1", typ: "T"}, ev{stream: "c-1", typ: "T"}, ev{stream: "d-1", typ: "T"})
	g := e.group(groupConfig("g"), 1)
	m := e.join(g, log.MemberOptions{})
	wantLeased(t, "first", e.lease(m, 3, false), "1", "2", "3")
	wantLeased(t, "acks", e.lease(m, 0, false, 1, 2))
	res, err := g.Reset(ctx, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 3 || res.To != 1 || res.Events == 0 {
		t.Errorf("dry run back to 1: %+v, want from 3 to 1 and a count", res)
	}
	if p, _ := g.Position(ctx); p != 3 {
		t.Errorf("position after a dry run: %d, want 3 (unchanged)", p)
	}
	if _, err := g.Reset(ctx, 1, false); err != nil {
		t.Fatal(err)
	}
	// 3 is still this member's: the others come again, 3 once it is done.
	wantLeased(t, "after the reset", e.lease(m, 10, false), "1", "2", "4")
	wantLeased(t, "after acking the held one", e.lease(m, 10, false, 3), "3")
	wantLeased(t, "acks", e.lease(m, 0, false, 1, 2, 3, 4))
	if p, _ := g.Position(ctx); p != 5 {
		t.Fatalf("position after acking everything: %d, want 5", p)
	}
	e.append(e.s, ev{stream: "e-1", typ: "T"}, ev{stream: "f-1", typ: "T"})
	res, err = g.Reset(ctx, 7, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 5 || res.To != 7 || res.Events != 2 {
		t.Errorf("reset forward over two events: %+v, want from 5 to 7, 2 events", res)
	}
	wantLeased(t, "after skipping", e.lease(m, 10, false))
	if st := e.status(g); st.Committed != 7 || st.Lag != 0 {
		t.Errorf("Status after skipping to the end: %+v", st)
	}
}

// testGroupPositionAfterAppend: an event is in the group's position
// and lag as soon as its append returns (on nats a consumer hears of a
// message only after its publish was acknowledged), and once acked the
// position is past it.
func testGroupPositionAfterAppend(e *env) {
	t := e.t
	ctx := context.Background()
	g := e.group(groupConfig("g"), 1)
	m := e.join(g, log.MemberOptions{})
	for i := range 50 {
		p := e.append(e.s, ev{stream: fmt.Sprintf("a-%d", i), typ: "T"})[0].Position
		if got, err := g.Position(ctx); err != nil || got != p {
			t.Fatalf("round %d: position right after appending %d: %d, %v; want %d", i, p, got, err, p)
		}
		if st := e.status(g); st.Committed != p || st.Lag != 1 {
			t.Fatalf("round %d: status right after appending %d: %+v; want committed %d, lag 1", i, p, st, p)
		}
		wantLeased(t, fmt.Sprintf("round %d", i), e.lease(m, 1, false), fmt.Sprint(p))
		e.lease(m, 0, false, p)
		if got, err := g.Position(ctx); err != nil || got != p+1 {
			t.Fatalf("round %d: position after acking %d: %d, %v; want %d", i, p, got, err, p+1)
		}
	}
}

// testGroupWait: Wait returns once another handle appends.
func testGroupWait(e *env) {
	t := e.t
	g := e.group(groupConfig("g"), 1)
	m := e.join(g, log.MemberOptions{})
	wantLeased(t, "an empty log", e.lease(m, 1, false))
	o := e.another()
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { done <- m.Wait(ctx) }()
	time.Sleep(50 * time.Millisecond)
	e.append(o, ev{stream: "a-1", typ: "T"})
	if err := <-done; err != nil {
		t.Fatalf("Wait while another handle appends: %v", err)
	}
	wantLeased(t, "after the wait", e.lease(m, 1, false), "1")
	// Wait may return early (the group may have changed); it never
	// outlives its context.
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	for m.Wait(short) == nil {
	}
	if short.Err() == nil {
		t.Error("Wait returned an error before its context ended")
	}
}

// drain leases and acks everything m can get now and returns the
// positions it got.
func (e *env) drain(m log.Member) []uint64 {
	e.t.Helper()
	var got, acks []uint64
	for {
		ds, _, err := m.Lease(context.Background(), 100, true, acks...)
		if err != nil {
			e.t.Fatalf("Lease: %v", err)
		}
		if len(ds) == 0 {
			return got
		}
		acks = acks[:0]
		for _, d := range ds {
			got = append(got, d.Event.Position)
			acks = append(acks, d.Event.Position)
		}
	}
}

// testGroupQueue: under an until-acked rule, what every group acked is
// gone and stays gone: not back after a group is reset to the start,
// created over it, or after the last group reading it is removed; nor
// after a compaction.
func testGroupQueue(e *env) {
	t := e.t
	ctx := context.Background()
	e.append(e.s, ev{stream: "q-1", typ: "T"}, ev{stream: "q-1", typ: "T"}, ev{stream: "q-2", typ: "T"}, ev{stream: "q-1", typ: "T"}) // 1..4
	e.append(e.s, ev{stream: "o-1", typ: "T"})                                                                                        // 5, no rule
	a := e.group(groupConfig("a"), 1)
	b := e.group(groupConfig("b"), 1)
	err := e.s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = append(r.Rules, log.Rule{Selection: "q-*", UntilAcked: true})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ma, mb := e.join(a, log.MemberOptions{}), e.join(b, log.MemberOptions{})
	if got := e.drain(ma); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("a got %v, want 1..5", got)
	}
	// b acks 1 and 2 only: 3 and 4 stay for it.
	wantLeased(t, "b's first", e.lease(mb, 2, true), "1", "2")
	wantLeased(t, "b acks 1 2", e.lease(mb, 0, true, 1, 2))
	queue := func(what string, want ...uint64) {
		t.Helper()
		if got := positions(e.readOK(e.s, log.Query{Selection: sel(t, "q-*")})); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%s: q-* reads %v, want %v", what, got, want)
		}
	}
	queue("acked by a, 1 2 by b", 3, 4)

	if _, err := a.Reset(ctx, 1, false); err != nil {
		t.Fatal(err)
	}
	queue("after a reset to 1", 3, 4)
	if got := e.drain(ma); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Errorf("a after its reset got %v, want [3 4 5]: 1 and 2 had expired", got)
	}
	if err := e.s.CreateGroup(ctx, groupConfig("c"), 1); err != nil {
		t.Fatal(err)
	}
	queue("after creating c from 1", 3, 4)
	if got := e.drain(mb); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Errorf("b got %v, want [3 4 5]", got)
	}
	queue("c holds 3 and 4", 3, 4)
	mb.Close()
	for _, name := range []string{"c", "b"} {
		if err := e.s.RemoveGroup(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	queue("acked by a and b, c removed")
	ma.Close()
	if err := e.s.RemoveGroup(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	queue("no group left")
	e.append(e.s, ev{stream: "q-1", typ: "T"}) // 6
	queue("a new event with no group", 6)
	d := e.group(groupConfig("d"), 1)
	if got := e.drain(e.join(d, log.MemberOptions{})); !slices.Equal(got, []uint64{5, 6}) {
		t.Errorf("d from 1 got %v, want [5 6]", got)
	}
	if c, ok := e.s.(log.Compacter); ok {
		if _, err := c.Compact(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		queue("after a compaction")
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.s.RemoveGroup(ctx, "d"); err != nil {
			t.Fatal(err)
		}
		if err := e.s.CreateGroup(ctx, groupConfig("e"), 1); err != nil {
			t.Fatal(err)
		}
		queue("compacted, d removed, e created from 1")
	}
}

// testGroupSkipped: events a retention limit removed before the group
// handled them are counted in Status.Skipped and reported by one lease
// once; deleted ones are not counted.
func testGroupSkipped(e *env) {
	t := e.t
	old := time.Now().Add(-3 * time.Hour)
	e.append(e.s, ev{stream: "a-1", typ: "T", at: old}, ev{stream: "a-1", typ: "T", at: old}, ev{stream: "b-1", typ: "T", at: old}) // 1..3
	e.append(e.s, ev{stream: "a-1", typ: "T"}, ev{stream: "d-1", typ: "T"})                                                         // 4, 5
	g := e.group(groupConfig("g"), 1)
	if st := e.status(g); st.Skipped != 0 {
		t.Errorf("Skipped before any limit: %d, want 0", st.Skipped)
	}
	err := e.s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = append(r.Rules, log.Rule{Selection: "a-*", MaxAge: time.Hour})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Delete(context.Background(), "d-1", log.Expectation{}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(g); st.Skipped != 2 || st.Lag != 2 {
		t.Errorf("Status under max age 1h of a-*: skipped %d, lag %d; want 2 (1 and 2) and 2 (3 and 4)", st.Skipped, st.Lag)
	}
	m := e.join(g, log.MemberOptions{})
	wantLeased(t, "under the limit", e.lease(m, 10, true), "3", "4")
	if n := m.Skipped(); n != 2 {
		t.Errorf("Member.Skipped after the first lease: %d, want 2", n)
	}
	wantLeased(t, "acks", e.lease(m, 10, true, 3, 4))
	if n := m.Skipped(); n != 0 {
		t.Errorf("Member.Skipped after the next lease: %d, want 0 (reported once)", n)
	}
	if _, err := g.Reset(context.Background(), 1, false); err != nil {
		t.Fatal(err)
	}
	wantLeased(t, "after a reset", e.lease(m, 10, true), "3", "4")
	if st := e.status(g); st.Skipped != 2 || m.Skipped() != 0 {
		t.Errorf("after a reset: skipped %d, member's news %d; want 2, 0", st.Skipped, m.Skipped())
	}
}
