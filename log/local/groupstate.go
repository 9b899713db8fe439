package local

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log/atomicfile"
)

// The group state file (groups/NAME/state) is binary: a consumer writes
// it twice per batch, and encoding/json made that most of the cost of
// consuming. Little-endian:
//
//	magic "EVTGRP02"
//	committed u64, next u64, tokens u64, pending count u32, parked count u32
//	pending, each: position u64, deliveries u32, token u64, flags u8
//	  (1 manual, 2 again), deadline i64 (unix ns, 0 = none), not-before
//	  i64, then strings stream, member, last error
//	parked, each: position u64, deliveries u32, at i64, then strings
//	  stream, type, reason
//	crc32c u32 of everything before it
//
// A string is a u16 length and its bytes. Version 1 ("EVTGRP01", written
// before leases had tokens) has no tokens, token or flags; it is read as
// leases with token 0, which no member holds: a member that handled an
// event across the upgrade has its ack ignored, and the event is
// delivered again, as at-least-once allows.
const (
	groupStateMagic   = "EVTGRP02"
	groupStateMagicV1 = "EVTGRP01"
)

// Lease flags in the state file.
const (
	leaseManual = 1 << iota
	leaseAgain
)

func encodeGroupState(st *GroupState) []byte {
	b := make([]byte, 0, 32+len(st.Pending)*64+len(st.Parked)*96)
	b = append(b, groupStateMagic...)
	b = binary.LittleEndian.AppendUint64(b, st.Committed)
	b = binary.LittleEndian.AppendUint64(b, st.Next)
	b = binary.LittleEndian.AppendUint64(b, st.Tokens)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(st.Pending)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(st.Parked)))
	// Sorted, so the same state always encodes to the same bytes (an
	// Update that changed nothing then writes nothing).
	for _, p := range slices.Sorted(maps.Keys(st.Pending)) {
		l := st.Pending[p]
		b = binary.LittleEndian.AppendUint64(b, p)
		b = binary.LittleEndian.AppendUint32(b, uint32(l.Deliveries))
		b = binary.LittleEndian.AppendUint64(b, l.Token)
		var flags byte
		if l.Manual {
			flags |= leaseManual
		}
		if l.Again {
			flags |= leaseAgain
		}
		b = append(b, flags)
		b = binary.LittleEndian.AppendUint64(b, uint64(unixNano(l.Deadline)))
		b = binary.LittleEndian.AppendUint64(b, uint64(unixNano(l.NotBefore)))
		b = appendStr(b, l.Stream)
		b = appendStr(b, l.Member)
		b = appendStr(b, l.LastError)
	}
	for _, p := range slices.Sorted(maps.Keys(st.Parked)) {
		pk := st.Parked[p]
		b = binary.LittleEndian.AppendUint64(b, p)
		b = binary.LittleEndian.AppendUint32(b, uint32(pk.Deliveries))
		b = binary.LittleEndian.AppendUint64(b, uint64(unixNano(pk.At)))
		b = appendStr(b, pk.Stream)
		b = appendStr(b, pk.Type)
		b = appendStr(b, pk.Reason)
	}
	return binary.LittleEndian.AppendUint32(b, codec.Checksum(b))
}

var errGroupState = errors.New("malformed group state")

func decodeGroupState(b []byte) (*GroupState, error) {
	if len(b) < 36 || string(b[:8]) != groupStateMagic && string(b[:8]) != groupStateMagicV1 {
		return nil, errGroupState
	}
	v1 := string(b[:8]) == groupStateMagicV1
	n := len(b) - 4
	if binary.LittleEndian.Uint32(b[n:]) != codec.Checksum(b[:n]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errGroupState)
	}
	d := stateDecoder{b: b[8:n]}
	st := &GroupState{Committed: d.u64(), Next: d.u64(), Pending: map[uint64]*Lease{}, Parked: map[uint64]Parked{}}
	if !v1 {
		st.Tokens = d.u64()
	}
	np, nk := d.u32(), d.u32()
	// Positions come sorted, once each, and flags hold known bits only
	// (as encodeGroupState writes them): a state is read one way only.
	var prev, prevParked uint64
	for i := uint32(0); i < np && d.ok(); i++ {
		p := d.u64()
		if i > 0 && p <= prev {
			return nil, fmt.Errorf("%w: pending positions out of order", errGroupState)
		}
		prev = p
		l := &Lease{Deliveries: int(d.u32())}
		if !v1 {
			l.Token = d.u64()
			flags := d.take(1)[0]
			if flags&^(leaseManual|leaseAgain) != 0 {
				return nil, fmt.Errorf("%w: unknown lease flags %#x", errGroupState, flags)
			}
			l.Manual, l.Again = flags&leaseManual != 0, flags&leaseAgain != 0
		}
		l.Deadline, l.NotBefore = fromUnixNano(int64(d.u64())), fromUnixNano(int64(d.u64()))
		l.Stream, l.Member, l.LastError = d.str(), d.str(), d.str()
		st.Pending[p] = l
	}
	for i := uint32(0); i < nk && d.ok(); i++ {
		p := d.u64()
		if i > 0 && p <= prevParked {
			return nil, fmt.Errorf("%w: parked positions out of order", errGroupState)
		}
		prevParked = p
		pk := Parked{Deliveries: int(d.u32()), At: fromUnixNano(int64(d.u64()))}
		pk.Stream, pk.Type, pk.Reason = d.str(), d.str(), d.str()
		st.Parked[p] = pk
	}
	if !d.ok() || len(d.b) != 0 {
		return nil, errGroupState
	}
	return st, nil
}

func appendStr(b []byte, s string) []byte {
	if len(s) > 65535 {
		s = s[:65535]
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// stateDecoder reads the fields of a group state, turning a short buffer
// into a sticky failure instead of a panic.
type stateDecoder struct {
	b   []byte
	bad bool
}

func (d *stateDecoder) ok() bool { return !d.bad }

func (d *stateDecoder) take(n int) []byte {
	if d.bad || len(d.b) < n {
		d.bad = true
		return make([]byte, n)
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *stateDecoder) u64() uint64 { return binary.LittleEndian.Uint64(d.take(8)) }
func (d *stateDecoder) u32() uint32 { return binary.LittleEndian.Uint32(d.take(4)) }
func (d *stateDecoder) str() string {
	return string(d.take(int(binary.LittleEndian.Uint16(d.take(2)))))
}

// writeFileReplace writes data to path through a temporary file and a
// rename, so readers see the old or the new content, never a mix. The
// temporary file is synced before the rename (log/atomicfile): without
// that, a power loss can leave the new name on an empty or torn file,
// and the group unreadable (TestPowerLoss in fault_test.go found it).
func (s *Store) writeFileReplace(path string, data []byte) error {
	return atomicfile.WriteFS(s.fsys, path, data, 0o600)
}
