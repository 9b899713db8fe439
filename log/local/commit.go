package local

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// The commit file says where the log ends. Readers trust it and read
// nothing past it; only a writer holding the append lock changes it.
//
// It has two 128-byte slots, at offsets 0 and 512 (different disk
// sectors). A writer overwrites the slot with the older sequence number, so
// a torn write — or a reader racing the writer — leaves the other slot
// whole; a reader takes the valid slot with the higher sequence. Each slot:
//
//	  0  seq u64          incremented by every publish
//	  8  next u64         next position to assign (last committed + 1)
//	 16  active u64       first position of the active segment
//	 24  size u64         committed length of the active segment in bytes
//	 32  lastTime i64     time of the last record (times never go back)
//	 40  lastSync i64     when the log was last fdatasynced (sync=interval)
//	 48  boot [16]byte    kernel boot id of the writer (a different boot
//	                      means a power loss or reboot may have dropped
//	                      unsynced pages of derived files)
//	 64  reserved, zero (a slot with other bytes here is invalid)
//	124  crc32c of bytes [0, 124) u32
//
// The file is not fsynced: the segments are the truth. If a power loss
// drops the latest publish, recovery finds the synced batches past the
// older end by scanning forward (see recover.go).
const (
	commitFile     = "commit"
	commitSlotSize = 128
	commitSlotGap  = 512
)

type commitState struct {
	seq      uint64
	next     uint64
	active   uint64
	size     int64
	lastTime int64
	lastSync int64
	boot     [16]byte
}

func (c *commitState) encode() []byte {
	b := make([]byte, commitSlotSize)
	binary.LittleEndian.PutUint64(b[0:], c.seq)
	binary.LittleEndian.PutUint64(b[8:], c.next)
	binary.LittleEndian.PutUint64(b[16:], c.active)
	binary.LittleEndian.PutUint64(b[24:], uint64(c.size))
	binary.LittleEndian.PutUint64(b[32:], uint64(c.lastTime))
	binary.LittleEndian.PutUint64(b[40:], uint64(c.lastSync))
	copy(b[48:64], c.boot[:])
	binary.LittleEndian.PutUint32(b[124:], codec.Checksum(b[:124]))
	return b
}

// decodeCommit reads one slot. A slot is valid when its checksum matches,
// its reserved bytes are zero and its fields are consistent; a valid slot
// re-encodes to exactly its bytes.
func decodeCommit(b []byte) (commitState, bool) {
	var c commitState
	if len(b) < commitSlotSize || binary.LittleEndian.Uint32(b[124:]) != codec.Checksum(b[:124]) {
		return c, false
	}
	if !allZero(b[64:124]) {
		return c, false
	}
	c.seq = binary.LittleEndian.Uint64(b[0:])
	c.next = binary.LittleEndian.Uint64(b[8:])
	c.active = binary.LittleEndian.Uint64(b[16:])
	c.size = int64(binary.LittleEndian.Uint64(b[24:]))
	c.lastTime = int64(binary.LittleEndian.Uint64(b[32:]))
	c.lastSync = int64(binary.LittleEndian.Uint64(b[40:]))
	copy(c.boot[:], b[48:64])
	if c.seq == 0 || c.next == 0 || c.active == 0 || c.active > c.next || c.size < segmentHeaderSize {
		return c, false
	}
	return c, true
}

// readCommit returns the newest valid slot. A reader can race a writer
// and see a half-written slot; the CRC rejects it and the other slot (one
// publish older, still a consistent end) is used.
func readCommit(f io.ReaderAt) (commitState, error) {
	buf := make([]byte, commitSlotGap+commitSlotSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return commitState{}, err
	}
	return decodeCommitFile(buf[:n])
}

// decodeCommitFile picks the valid slot with the higher sequence from the
// bytes of a commit file, or returns a *CorruptError.
func decodeCommitFile(buf []byte) (commitState, error) {
	a, okA := decodeCommit(buf)
	var b commitState
	okB := false
	if len(buf) >= commitSlotGap+commitSlotSize {
		b, okB = decodeCommit(buf[commitSlotGap:])
	}
	switch {
	case okA && okB:
		if b.seq > a.seq {
			return b, nil
		}
		return a, nil
	case okA:
		return a, nil
	case okB:
		return b, nil
	}
	return commitState{}, &log.CorruptError{File: commitFile, Offset: -1, Reason: "no valid commit slot"}
}

// writeCommit publishes c (whose seq the caller has incremented) into the
// slot the previous publish did not use.
func writeCommit(f io.WriterAt, c *commitState) error {
	off := int64(0)
	if c.seq%2 == 0 {
		off = commitSlotGap
	}
	_, err := f.WriteAt(c.encode(), off)
	return err
}
