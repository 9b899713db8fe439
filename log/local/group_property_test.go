package local

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// TestGroupProperty runs random schedules of members (joins, leases with
// and without chain, acks alone and with the next lease, late acks of
// leases a reset dropped, nacks, returns, clean closes and deaths), group
// resets back and forward, and appends, against a model of what the
// group promises (log/group.go), and checks the three promises:
//
//   - nothing lost: every event is handled (acked by a member while it
//     held it, or skipped by a reset) by the end, when one last member
//     drains the group;
//   - one member at a time: an event is never handed out while another
//     member holds it (a member holds an event from its lease until it
//     acks, nacks or returns it, closes or dies, or a reset forward drops
//     the lease);
//   - per-stream order (ordering stream): an event is handed out only
//     when every earlier event of its stream is handled, or (with chain)
//     comes before it in the same batch.
//
// A death is a member's file lock let go without giving anything back,
// as a SIGKILL leaves it. Each round is seeded: a failure names its seed,
// and EVT_GROUP_PROPERTY_SEED=N runs that round alone.
// EVT_GROUP_PROPERTY_ROUNDS=N runs N rounds of random seeds (a longer
// run than the 20 fixed seeds go test runs), EVT_GROUP_PROPERTY_STEPS
// the steps per round (default 150).
func TestGroupProperty(t *testing.T) {
	steps := envInt(t, "EVT_GROUP_PROPERTY_STEPS", 150)
	var seeds []uint64
	switch {
	case os.Getenv("EVT_GROUP_PROPERTY_SEED") != "":
		seeds = []uint64{uint64(envInt(t, "EVT_GROUP_PROPERTY_SEED", 0))}
	case os.Getenv("EVT_GROUP_PROPERTY_ROUNDS") != "":
		base := uint64(time.Now().UnixNano())
		for i := range envInt(t, "EVT_GROUP_PROPERTY_ROUNDS", 0) {
			seeds = append(seeds, base+uint64(i))
		}
	default:
		for i := range 20 {
			seeds = append(seeds, uint64(i+1))
		}
	}
	for _, seed := range seeds {
		if !t.Run(fmt.Sprint(seed), func(t *testing.T) { groupRound(t, seed, steps) }) {
			t.Fatalf("round failed: rerun it with EVT_GROUP_PROPERTY_SEED=%d EVT_GROUP_PROPERTY_STEPS=%d go test ./log/local -run TestGroupProperty", seed, steps)
		}
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: not a number", name, v)
	}
	return n
}

// propMember is a member as the schedule drives it: what it was handed
// and has not answered for (some of which the model may have taken from
// it since: a late answer must change nothing).
type propMember struct {
	m    *Member
	name string
	got  []uint64
}

// propModel is what the group must have done.
type propModel struct {
	t       *testing.T
	streams map[uint64]string
	done    map[uint64]bool        // handled, or skipped by a reset
	holder  map[uint64]*propMember // who holds an event now
	again   map[uint64]bool        // held across a reset back: not done when its holder is
	log     []string               // the schedule, for a failure's report
}

func (md *propModel) failf(format string, args ...any) {
	md.t.Helper()
	tail := md.log
	if len(tail) > 40 {
		tail = tail[len(tail)-40:]
	}
	md.t.Fatalf("%s\nlast steps:\n  %s", fmt.Sprintf(format, args...), strings.Join(tail, "\n  "))
}

// end ends m's hold on p, by an answer (handled tells an ack) or its
// death; an answer for a lease it no longer holds changes nothing.
func (md *propModel) end(pm *propMember, p uint64, handled bool) {
	if md.holder[p] != pm {
		return
	}
	delete(md.holder, p)
	if md.again[p] {
		delete(md.again, p) // delivered again from its first delivery
		return
	}
	if handled {
		md.done[p] = true
	}
}

// delivered checks one batch handed to pm (after its acks were applied).
func (md *propModel) delivered(pm *propMember, ds []log.Delivery, chain bool) {
	md.t.Helper()
	inBatch := map[uint64]bool{}
	for _, d := range ds {
		p := d.Event.Position
		if md.done[p] {
			md.failf("%s got %d, handled already", pm.name, p)
		}
		if h := md.holder[p]; h != nil {
			md.failf("%s got %d while %s holds it", pm.name, p, h.name)
		}
		stream := md.streams[p]
		for q, s := range md.streams {
			if s != stream || q >= p || md.done[q] || chain && inBatch[q] {
				continue
			}
			md.failf("%s got %d of %s before %d of the same stream was handled (chain %v)", pm.name, p, stream, q, chain)
		}
		inBatch[p] = true
		md.holder[p] = pm
		pm.got = append(pm.got, p)
	}
}

func groupRound(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := openTest(t, t.TempDir(), 0)
	ctx := context.Background()
	cfg := log.GroupConfig{Name: "g", Selection: "*", AckWait: time.Hour, MaxDeliver: 1 << 20, Ordering: "stream"}
	if err := s.CreateGroup(ctx, cfg, 1); err != nil {
		t.Fatal(err)
	}
	admin, err := s.openGroup("g")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	md := &propModel{t: t, streams: map[uint64]string{}, done: map[uint64]bool{}, holder: map[uint64]*propMember{}, again: map[uint64]bool{}}
	var live []*propMember
	next := uint64(1)
	joins := 0
	join := func() *propMember {
		g, err := s.openGroup("g")
		if err != nil {
			t.Fatal(err)
		}
		m, err := g.join(log.MemberOptions{})
		if err != nil {
			t.Fatal(err)
		}
		joins++
		pm := &propMember{m: m, name: fmt.Sprintf("m%d", joins)}
		md.log = append(md.log, pm.name+" joins")
		return pm
	}
	appendSome := func() {
		var b log.Batch
		n := 1 + r.IntN(4)
		var names []string
		for range n {
			stream := fmt.Sprintf("s-%d", r.IntN(4))
			if err := b.Add(stream, "T", "", []byte(`{}`), nil); err != nil {
				t.Fatal(err)
			}
			md.streams[next] = stream
			names = append(names, fmt.Sprintf("%d %s", next, stream))
			next++
		}
		if _, err := s.Append(ctx, &b); err != nil {
			t.Fatal(err)
		}
		md.log = append(md.log, "append "+strings.Join(names, ", "))
	}
	lease := func(pm *propMember, n int, chain bool, acks []uint64) {
		ds, _, err := pm.m.Lease(ctx, n, chain, acks...)
		if err != nil {
			md.failf("%s: Lease: %v", pm.name, err)
		}
		for _, p := range acks {
			md.end(pm, p, true)
		}
		var ps []uint64
		for _, d := range ds {
			ps = append(ps, d.Event.Position)
		}
		md.log = append(md.log, fmt.Sprintf("%s leases %d chain %v acking %v: got %v", pm.name, n, chain, acks, ps))
		md.delivered(pm, ds, chain)
	}
	// take removes k of pm's events (its oldest, or random ones) from its
	// list, for an answer.
	take := func(pm *propMember, k int) []uint64 {
		k = min(k, len(pm.got))
		r.Shuffle(len(pm.got), func(i, j int) { pm.got[i], pm.got[j] = pm.got[j], pm.got[i] })
		out := slices.Clone(pm.got[:k])
		pm.got = pm.got[k:]
		return out
	}

	for range steps {
		if len(live) == 0 || len(live) < 4 && r.IntN(8) == 0 {
			live = append(live, join())
			continue
		}
		pm := live[r.IntN(len(live))]
		switch op := r.IntN(20); {
		case op < 4:
			appendSome()
		case op < 9: // lease, maybe acking some of what it holds
			lease(pm, 1+r.IntN(5), r.IntN(2) == 0, take(pm, r.IntN(3)))
		case op < 12: // ack alone
			ps := take(pm, 1+r.IntN(3))
			if err := pm.m.Ack(ctx, ps...); err != nil {
				md.failf("%s: Ack: %v", pm.name, err)
			}
			for _, p := range ps {
				md.end(pm, p, true)
			}
			md.log = append(md.log, fmt.Sprintf("%s acks %v", pm.name, ps))
		case op < 13: // nack one
			for _, p := range take(pm, 1) {
				if err := pm.m.Nack(ctx, p, "failed"); err != nil {
					md.failf("%s: Nack: %v", pm.name, err)
				}
				md.end(pm, p, false)
				md.log = append(md.log, fmt.Sprintf("%s nacks %d", pm.name, p))
			}
		case op < 14: // return some
			ps := take(pm, 1+r.IntN(2))
			if err := pm.m.Return(ctx, ps...); err != nil {
				md.failf("%s: Return: %v", pm.name, err)
			}
			for _, p := range ps {
				md.end(pm, p, false)
			}
			md.log = append(md.log, fmt.Sprintf("%s returns %v", pm.name, ps))
		case op < 16: // leave: a clean close, or a death
			die := r.IntN(2) == 0
			if die {
				pm.m.w.Close()
				pm.m.file.Close() // the flock goes; nothing is given back
			} else if err := pm.m.Close(); err != nil {
				md.failf("%s: Close: %v", pm.name, err)
			}
			pm.m.g.Close()
			for p, h := range md.holder {
				if h == pm {
					md.end(pm, p, false)
				}
			}
			live = slices.DeleteFunc(live, func(x *propMember) bool { return x == pm })
			md.log = append(md.log, fmt.Sprintf("%s leaves (died %v)", pm.name, die))
		case op < 18: // reset, mostly back
			st, err := admin.State()
			if err != nil {
				t.Fatal(err)
			}
			to := 1 + uint64(r.IntN(int(next)))
			if _, err := admin.Reset(ctx, to, false); err != nil {
				md.failf("Reset: %v", err)
			}
			for p := range md.streams {
				held := md.holder[p] != nil
				switch {
				case p < to && held:
					delete(md.holder, p) // the lease is dropped; its answer is ignored
					delete(md.again, p)
					md.done[p] = true
				case p < to:
					md.done[p] = true
				case held:
					md.again[p] = true
					delete(md.done, p)
				default:
					delete(md.done, p)
				}
			}
			md.log = append(md.log, fmt.Sprintf("reset from %d to %d", st.Committed, to))
		default: // a late answer from a member for every event in its list
			ps := take(pm, len(pm.got))
			acks := ps[:len(ps)/2]
			if err := pm.m.Ack(ctx, acks...); err != nil {
				md.failf("%s: Ack: %v", pm.name, err)
			}
			for _, p := range acks {
				md.end(pm, p, true)
			}
			for _, p := range ps[len(ps)/2:] {
				if err := pm.m.Nack(ctx, p, "late"); err != nil {
					md.failf("%s: Nack: %v", pm.name, err)
				}
				md.end(pm, p, false)
			}
			md.log = append(md.log, fmt.Sprintf("%s acks %v, nacks %v", pm.name, acks, ps[len(ps)/2:]))
		}
	}

	// Everybody leaves; one last member drains the group, waiting out
	// backoffs, and must get every event not yet handled.
	for _, pm := range live {
		if err := pm.m.Close(); err != nil {
			md.failf("%s: Close: %v", pm.name, err)
		}
		pm.m.g.Close()
		for p, h := range md.holder {
			if h == pm {
				md.end(pm, p, false)
			}
		}
	}
	last := join()
	defer last.m.Close()
	deadline := time.Now().Add(time.Minute)
	var acks []uint64
	for {
		lease(last, 100, true, acks)
		acks = take(last, len(last.got))
		if len(acks) > 0 {
			continue
		}
		if len(md.done) == len(md.streams) {
			break
		}
		if time.Now().After(deadline) {
			var missing []uint64
			for p := range md.streams {
				if !md.done[p] {
					missing = append(missing, p)
				}
			}
			slices.Sort(missing)
			md.failf("lost: %v never delivered to the last member", missing)
		}
		time.Sleep(20 * time.Millisecond) // a nacked event's backoff
	}
	st, err := admin.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Committed != next || st.Lag != 0 || st.Leased != 0 {
		md.failf("after the drain: committed %d, lag %d, leased %d; want %d, 0, 0", st.Committed, st.Lag, st.Leased, next)
	}
}

// TestQueueMonotonic: under an until-acked rule, random schedules of
// appends, groups created (over every stream, one stream, or the queue)
// and removed, members draining some of a group, resets back and
// forward, and compactions never bring back an event once it was gone:
// the set of removed queue events only grows. Seeded like
// TestGroupProperty (EVT_GROUP_PROPERTY_SEED reruns one round,
// EVT_GROUP_PROPERTY_ROUNDS runs that many random ones).
func TestQueueMonotonic(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	switch {
	case os.Getenv("EVT_GROUP_PROPERTY_SEED") != "":
		seeds = []uint64{uint64(envInt(t, "EVT_GROUP_PROPERTY_SEED", 0))}
	case os.Getenv("EVT_GROUP_PROPERTY_ROUNDS") != "":
		seeds = seeds[:0]
		base := uint64(time.Now().UnixNano())
		for i := range envInt(t, "EVT_GROUP_PROPERTY_ROUNDS", 0) {
			seeds = append(seeds, base+uint64(i))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { queueRound(t, seed) })
	}
}

func queueRound(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	s := openTest(t, t.TempDir(), 4096)
	ctx := context.Background()
	if err := s.UpdateRetention(func(rt *log.Retention) error {
		rt.Rules = []log.Rule{{Selection: "q-*", UntilAcked: true}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var queue []uint64 // positions of q-* events
	gone := map[uint64]bool{}
	var steps []string
	var groups []string
	made := 0
	pad := strings.Repeat("x", 300)
	for step := range 120 {
		switch op := r.IntN(10); {
		case op < 3:
			stream := []string{"q-1", "q-2", "o-1"}[r.IntN(3)]
			res := appendData(t, s, stream, pad)
			if stream != "o-1" {
				queue = append(queue, res.Position)
			}
			steps = append(steps, fmt.Sprintf("append %s at %d", stream, res.Position))
		case op < 4 || len(groups) == 0:
			made++
			name := fmt.Sprintf("g%d", made)
			sel := []string{"*", "q-1", "q-*"}[r.IntN(3)]
			cfg := log.GroupConfig{Name: name, Selection: sel, AckWait: time.Hour, MaxDeliver: 5, Ordering: "stream"}
			if err := s.CreateGroup(ctx, cfg, 1); err != nil {
				t.Fatal(err)
			}
			groups = append(groups, name)
			steps = append(steps, fmt.Sprintf("create %s over %s from 1", name, sel))
		case op < 7:
			name := groups[r.IntN(len(groups))]
			g, err := s.openGroup(name)
			if err != nil {
				t.Fatal(err)
			}
			m, err := g.join(log.MemberOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ds, _, err := m.Lease(ctx, 1+r.IntN(4), true)
			if err != nil {
				t.Fatal(err)
			}
			var ps []uint64
			for _, d := range ds {
				ps = append(ps, d.Event.Position)
			}
			if err := m.Ack(ctx, ps...); err != nil {
				t.Fatal(err)
			}
			m.Close()
			g.Close()
			steps = append(steps, fmt.Sprintf("%s handles %v", name, ps))
		case op < 8:
			name := groups[r.IntN(len(groups))]
			g, err := s.openGroup(name)
			if err != nil {
				t.Fatal(err)
			}
			_, next, _ := s.Bounds()
			to := 1 + uint64(r.IntN(int(next)))
			if _, err := g.Reset(ctx, to, false); err != nil {
				t.Fatal(err)
			}
			g.Close()
			steps = append(steps, fmt.Sprintf("reset %s to %d", name, to))
		case op < 9:
			i := r.IntN(len(groups))
			if err := s.RemoveGroup(ctx, groups[i]); err != nil {
				t.Fatal(err)
			}
			steps = append(steps, "rm "+groups[i])
			groups = slices.Delete(groups, i, i+1)
		default:
			if _, err := s.Compact(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			steps = append(steps, "compact")
		}
		seen := map[uint64]bool{}
		for rec, err := range s.Read(ctx, log.Query{Selection: mustSelection(t, "q-*")}) {
			if err != nil {
				t.Fatal(err)
			}
			seen[rec.Position] = true
		}
		for _, p := range queue {
			if !seen[p] {
				gone[p] = true
			} else if gone[p] {
				t.Fatalf("seed %d step %d: event %d came back after it was removed; steps:\n  %s", seed, step, p, strings.Join(steps, "\n  "))
			}
		}
	}
}

func appendData(t *testing.T, s *Store, stream, pad string) log.Result {
	t.Helper()
	var b log.Batch
	if err := b.Add(stream, "T", "", []byte(`{"pad":"`+pad+`"}`), nil); err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(context.Background(), &b)
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func mustSelection(t *testing.T, s string) codec.Selection {
	t.Helper()
	sel, err := codec.ParseSelection(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}
