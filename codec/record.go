package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A record is one event on disk. It validates itself: a reader needs no
// other file to know whether the bytes in front of it are a whole, intact
// record. All integers are little-endian.
//
//	 0               4               8
//	+---------------+---------------+
//	| length u32    | crc32c u32    |   length: whole record, header included
//	+---------------+---------------+   crc32c (Castagnoli): bytes [8, length)
//	| position u64                  |   global position, dense from 1
//	+-------------------------------+
//	| version u64                   |   version inside the stream, dense from 1
//	+-------------------------------+
//	| prev u64                      |   position of the stream's previous record, 0 if none
//	+-------------------------------+
//	| time i64                      |   unix nanoseconds, UTC, non-decreasing in the log
//	+-------+---+---+---+---+-------+
//	|flags  |sl |tl |il |0  | 0 u16 |   flags u16; stream/type/id lengths u8 each
//	+-------+---+---+---+---+-------+
//	| data length u32 | meta len u32|
//	+-------------------------------+   56 bytes of header, then:
//	| stream | type | id | data | metadata
//
// The end-of-batch flag marks the last record of an atomic batch: a reader
// or a recovering writer accepts records only up to the last such flag, so a
// batch torn by a crash is never seen.
const (
	RecordHeaderSize = 56
	// MaxRecordSize caps one record, header and body (1 MiB). It bounds the
	// memory a reader needs for one record and keeps a corrupt length from
	// making a reader allocate gigabytes.
	MaxRecordSize = 1 << 20
)

// Record flags.
const (
	FlagEndOfBatch uint16 = 1 << 0
	// FlagTombstone marks a delete marker: every version of its stream up
	// to the record's version is gone, and the stream reads as deleted
	// until a new event is appended to it.
	FlagTombstone uint16 = 1 << 1
	// FlagTruncate marks a truncate marker: every version of its stream up
	// to the record's version is gone.
	FlagTruncate uint16 = 1 << 2
	knownFlags          = FlagEndOfBatch | FlagTombstone | FlagTruncate
)

// Errors of record decoding. A *RecordError wraps one of them.
var (
	ErrShortRecord = errors.New("codec: truncated record")
	ErrChecksum    = errors.New("codec: checksum mismatch")
	ErrBadRecord   = errors.New("codec: malformed record")
)

// Record is a decoded view of one record; its byte slices alias the buffer
// it was decoded from.
type Record struct {
	Position uint64
	Version  uint64
	Prev     uint64
	Time     int64
	Flags    uint16
	Stream   []byte
	Type     []byte
	ID       []byte
	Data     []byte
	Metadata []byte
	Size     int // bytes the record occupies
}

// EndOfBatch reports whether the record closes an atomic batch.
func (r *Record) EndOfBatch() bool { return r.Flags&FlagEndOfBatch != 0 }

// Marker reports whether the record is a delete or truncate marker rather
// than an event. A marker's version field holds the last version it cuts
// off; it takes no version of its own and is not on the stream's chain of
// back-pointers (its prev is 0). Readers never print markers.
func (r *Record) Marker() bool { return r.Flags&(FlagTombstone|FlagTruncate) != 0 }

// RecordSize is the encoded size of a record with these fields.
func RecordSize(stream, typ, id string, data, meta []byte) int {
	return RecordHeaderSize + len(stream) + len(typ) + len(id) + len(data) + len(meta)
}

// AppendRecord encodes a record onto dst. Position, version, prev, time and
// flags may be left zero and set later with PatchRecord, which also seals
// the checksum; the caller has validated names and sizes.
func AppendRecord(dst []byte, stream, typ, id string, data, meta []byte) []byte {
	n := RecordSize(stream, typ, id, data, meta)
	start := len(dst)
	dst = append(dst, make([]byte, RecordHeaderSize)...)
	h := dst[start:]
	binary.LittleEndian.PutUint32(h[0:], uint32(n))
	h[42] = byte(len(stream))
	h[43] = byte(len(typ))
	h[44] = byte(len(id))
	binary.LittleEndian.PutUint32(h[48:], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[52:], uint32(len(meta)))
	dst = append(dst, stream...)
	dst = append(dst, typ...)
	dst = append(dst, id...)
	dst = append(dst, data...)
	dst = append(dst, meta...)
	return dst
}

// PatchRecord sets the fields only known under the append lock and writes
// the checksum. rec must start with an encoded record.
func PatchRecord(rec []byte, position, version, prev uint64, time int64, flags uint16) {
	binary.LittleEndian.PutUint64(rec[8:], position)
	binary.LittleEndian.PutUint64(rec[16:], version)
	binary.LittleEndian.PutUint64(rec[24:], prev)
	binary.LittleEndian.PutUint64(rec[32:], uint64(time))
	binary.LittleEndian.PutUint16(rec[40:], flags)
	n := binary.LittleEndian.Uint32(rec[0:])
	binary.LittleEndian.PutUint32(rec[4:], Checksum(rec[8:n]))
}

// RecordLength reads the length field of the record at the start of b,
// which must hold at least 4 bytes.
func RecordLength(b []byte) int { return int(binary.LittleEndian.Uint32(b)) }

// DecodeRecord decodes and validates the record at the start of b. It
// returns ErrShortRecord (wrapped) when b holds fewer bytes than the record
// claims, so a caller reading in chunks can fetch more and retry.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	if len(b) < RecordHeaderSize {
		if len(b) >= 4 && allZero(b) {
			return r, fmt.Errorf("%w: zero bytes where a record should start", ErrBadRecord)
		}
		return r, ErrShortRecord
	}
	n := RecordLength(b)
	if n < RecordHeaderSize || n > MaxRecordSize {
		if n == 0 {
			return r, fmt.Errorf("%w: zero bytes where a record should start", ErrBadRecord)
		}
		return r, fmt.Errorf("%w: length %d out of range", ErrBadRecord, n)
	}
	if len(b) < n {
		return r, ErrShortRecord
	}
	if got, want := Checksum(b[8:n]), binary.LittleEndian.Uint32(b[4:]); got != want {
		return r, ErrChecksum
	}
	r.Position = binary.LittleEndian.Uint64(b[8:])
	r.Version = binary.LittleEndian.Uint64(b[16:])
	r.Prev = binary.LittleEndian.Uint64(b[24:])
	r.Time = int64(binary.LittleEndian.Uint64(b[32:]))
	r.Flags = binary.LittleEndian.Uint16(b[40:])
	sl, tl, il := int(b[42]), int(b[43]), int(b[44])
	dl := int(binary.LittleEndian.Uint32(b[48:]))
	ml := int(binary.LittleEndian.Uint32(b[52:]))
	switch {
	case r.Flags&^knownFlags != 0:
		return r, fmt.Errorf("%w: unknown flags %#x", ErrBadRecord, r.Flags)
	case b[45] != 0 || b[46] != 0 || b[47] != 0:
		return r, fmt.Errorf("%w: reserved bytes set", ErrBadRecord)
	case sl == 0 || tl == 0 || il == 0:
		return r, fmt.Errorf("%w: empty stream, type or id", ErrBadRecord)
	case dl > MaxRecordSize || ml > MaxRecordSize || RecordHeaderSize+sl+tl+il+dl+ml != n:
		return r, fmt.Errorf("%w: field lengths do not add up to %d", ErrBadRecord, n)
	case r.Position == 0 || r.Version == 0 || r.Prev >= r.Position:
		return r, fmt.Errorf("%w: position %d, version %d, prev %d", ErrBadRecord, r.Position, r.Version, r.Prev)
	}
	p := b[RecordHeaderSize:n]
	r.Stream, p = p[:sl], p[sl:]
	r.Type, p = p[:tl], p[tl:]
	r.ID, p = p[:il], p[il:]
	r.Data, p = p[:dl], p[dl:]
	if ml > 0 {
		r.Metadata = p[:ml]
	}
	r.Size = n
	return r, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Event copies the record into an Event that owns its memory.
func (r *Record) Event() Event {
	e := Event{
		Position: r.Position,
		Stream:   string(r.Stream),
		Version:  r.Version,
		Type:     string(r.Type),
		Time:     time.Unix(0, r.Time).UTC(),
		ID:       string(r.ID),
		Data:     append([]byte(nil), r.Data...),
	}
	if len(r.Metadata) > 0 {
		e.Metadata = append([]byte(nil), r.Metadata...)
	}
	return e
}
