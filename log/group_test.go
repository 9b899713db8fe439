package log

import (
	"reflect"
	"testing"
	"time"
)

func TestGroupStateRoundTrip(t *testing.T) {
	now := time.Unix(0, time.Now().UnixNano())
	st := &GroupState{Committed: 5, Next: 42,
		Pending: map[uint64]*Lease{
			5: {Stream: "a-1", Member: "123", Deadline: now, Deliveries: 2, LastError: "exit status 1: boom"},
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
