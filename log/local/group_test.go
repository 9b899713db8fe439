package local

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/evtdev/evt/log"
)

func TestGroupStateRoundTrip(t *testing.T) {
	now := time.Unix(0, time.Now().UnixNano())
	st := &GroupState{Committed: 5, Next: 42, Tokens: 9,
		Pending: map[uint64]*Lease{
			5: {Stream: "a-1", Member: "123", Deadline: now, Deliveries: 2, LastError: "exit status 1: boom", Token: 9, Manual: true, Again: true},
			7: {Stream: "ä-2", NotBefore: now, Deliveries: 1},
		},
		Parked: map[uint64]Parked{6: {Stream: "a-1", Type: "T", Deliveries: 5, Reason: "died", At: now}},
	}
	b := encodeGroupState(st)
	got, err := decodeGroupState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("got %+v, want %+v", got, st)
	}
	for i := range b { // every truncation and every flipped byte is caught
		if _, err := decodeGroupState(b[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, err := decodeGroupState(c); err == nil {
			t.Fatalf("flip at %d accepted", i)
		}
	}
}

func FuzzDecodeGroupState(f *testing.F) {
	f.Add(encodeGroupState(&GroupState{Next: 1, Pending: map[uint64]*Lease{1: {Stream: "s"}}, Parked: map[uint64]Parked{}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeGroupState(b)
		if err != nil {
			return
		}
		if _, err := decodeGroupState(encodeGroupState(st)); err != nil {
			t.Fatalf("re-encoding fails: %v", err)
		}
	})
}

// TestIdleLeaseWritesNothing: a member that finds nothing to do must not
// rewrite the group's state. Members watch the group directory, so each
// write wakes every member, the writer included: an idle consumer looped
// at full speed (found by the compaction process tests).
func TestIdleLeaseWritesNothing(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	appendN(t, s, "a-1", 1)
	appendN(t, s, "b-1", 1)
	if err := s.CreateGroup(context.Background(), log.GroupConfig{Name: "g", AckWait: time.Minute, MaxDeliver: 5, Ordering: "stream"}, 1); err != nil {
		t.Fatal(err)
	}
	g, err := s.openGroup("g")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m, err := g.join(log.MemberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	ds, _, err := m.Lease(ctx, 10, false)
	if err != nil || len(ds) != 2 {
		t.Fatalf("first lease: %d deliveries, %v", len(ds), err)
	}
	inode := func() uint64 {
		fi, err := os.Stat(filepath.Join(g.Dir(), "state"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	before := inode()
	for i := 0; i < 5; i++ {
		if ds, _, err := m.Lease(ctx, 10, false); err != nil || len(ds) != 0 {
			t.Fatalf("idle lease %d: %d deliveries, %v", i, len(ds), err)
		}
	}
	if inode() != before {
		t.Fatal("an idle lease rewrote the group state")
	}
	if _, _, err := m.Lease(ctx, 10, false, ds[0].Event.Position); err != nil {
		t.Fatal(err)
	}
	if inode() == before {
		t.Fatal("an ack did not write the group state")
	}
}
