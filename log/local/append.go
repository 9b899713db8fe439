package local

import (
	cryptorand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/sys/unix"

	"github.com/evtdev/evt/codec"
)

// ExpectKind is the kind of an expected-version check.
type ExpectKind int

const (
	ExpectAny     ExpectKind = iota // no check
	ExpectNone                      // the stream must not exist (version 0)
	ExpectExists                    // the stream must exist
	ExpectVersion                   // the stream must be at exactly Version
)

// Expectation is an optimistic concurrency check on one stream.
type Expectation struct {
	Kind    ExpectKind
	Version uint64
}

// ParseExpectation reads any, none, exists or a version number.
func ParseExpectation(s string) (Expectation, error) {
	switch s {
	case "any", "":
		return Expectation{Kind: ExpectAny}, nil
	case "none":
		return Expectation{Kind: ExpectNone}, nil
	case "exists":
		return Expectation{Kind: ExpectExists}, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return Expectation{}, fmt.Errorf("invalid expectation %q (want any, none, exists or a version number)", s)
	}
	if v == 0 {
		return Expectation{Kind: ExpectNone}, nil
	}
	return Expectation{Kind: ExpectVersion, Version: v}, nil
}

func (e Expectation) holds(version uint64) bool {
	switch e.Kind {
	case ExpectNone:
		return version == 0
	case ExpectExists:
		return version > 0
	case ExpectVersion:
		return version == e.Version
	}
	return true
}

func (e Expectation) String() string {
	switch e.Kind {
	case ExpectNone:
		return "none (version 0)"
	case ExpectExists:
		return "exists"
	case ExpectVersion:
		return strconv.FormatUint(e.Version, 10)
	}
	return "any"
}

// Batch is an atomic group of events to append: all of them are stored,
// or none. Events are validated and encoded as they are added, before the
// append lock is taken, so the lock is held only to write.
type Batch struct {
	// Encoded records, in chunks rather than one growing slice: a bulk
	// import of a million events would otherwise spend most of its time
	// copying the slice each time it doubles.
	chunks [][]byte
	events []pending
	expect map[string]Expectation
	// Distinct streams of the batch: events refer to them by index, so
	// the append resolves each stream once rather than once per event.
	streams   []string
	streamIdx map[string]int
	// entropy makes this batch's ULIDs: monotonic, seeded once from the
	// system's randomness. ulid.Make's global source takes a lock per id,
	// which batches encoded on several cores would contend for.
	entropy *ulid.MonotonicEntropy
	// idTime is the millisecond of the ULIDs made, read from the clock
	// once per idClockEvery ids: a clock read per event was 5% of a bulk
	// append, and the monotonic entropy keeps ids of one millisecond
	// ordered and distinct.
	idTime  uint64
	idCount int
}

const idClockEvery = 256

// newID returns a fresh ULID.
func (b *Batch) newID() string {
	if b.entropy == nil {
		var seed [32]byte
		if _, err := cryptorand.Read(seed[:]); err != nil {
			return ulid.Make().String()
		}
		b.entropy = ulid.Monotonic(rand.NewChaCha8(seed), 0)
	}
	if b.idCount%idClockEvery == 0 {
		b.idTime = ulid.Timestamp(time.Now())
	}
	b.idCount++
	id, err := ulid.New(b.idTime, b.entropy)
	if err != nil { // the monotonic counter overflowed within one millisecond
		return ulid.Make().String()
	}
	return id.String()
}

const batchChunk = 4 << 20

// pending is one event of a batch. It holds no pointers (the id is read
// back from the encoded record), so a million of them cost the garbage
// collector nothing to scan and little to copy.
type pending struct {
	chunk  int32  // index into chunks
	off    int32  // offset of the encoded record in its chunk
	stream int32  // index into streams
	given  bool   // the producer chose the id: it may be a retry
	timed  bool   // the producer chose the time (AddAt): it is in the record
	marker uint16 // FlagTombstone or FlagTruncate: a marker, not an event
}

// id returns the id of event i, read from its encoded record.
func (b *Batch) id(i int) []byte {
	rec := b.record(i)
	start := codec.RecordHeaderSize + int(rec[42]) + int(rec[43])
	return rec[start : start+int(rec[44])]
}

// record returns the encoded record of event i.
func (b *Batch) record(i int) []byte {
	p := &b.events[i]
	c := b.chunks[p.chunk][p.off:]
	return c[:codec.RecordLength(c)]
}

// Add validates and encodes one event. data and meta must be valid
// compact JSON (codec.AppendCompact); meta may be nil. An empty id gets a
// fresh ULID.
func (b *Batch) Add(stream, typ, id string, data, meta []byte) error {
	// A stream already in the batch was validated when it first came.
	si, known := b.streamIdx[stream]
	if !known {
		if err := codec.ValidateStream(stream); err != nil {
			return err
		}
	}
	if err := codec.ValidateType(typ); err != nil {
		return err
	}
	given := id != ""
	if given {
		if err := codec.ValidateID(id); err != nil {
			return err
		}
	} else {
		id = b.newID()
	}
	n := codec.RecordSize(stream, typ, id, data, meta)
	if n > codec.MaxRecordSize {
		return fmt.Errorf("%w: event of %d bytes exceeds the record limit of %d bytes (1 MiB)", ErrTooLarge, n, codec.MaxRecordSize)
	}
	last := len(b.chunks) - 1
	if last < 0 || len(b.chunks[last])+n > cap(b.chunks[last]) {
		// Chunks double from 4 KiB to 4 MiB: a one-event batch stays
		// small, a million-event one makes few chunks.
		size := 4 << 10
		if last >= 0 {
			size = min(2*cap(b.chunks[last]), batchChunk)
		}
		b.chunks = append(b.chunks, make([]byte, 0, max(size, n)))
		last++
	}
	if !known {
		if b.streamIdx == nil {
			b.streamIdx = map[string]int{}
		}
		si = len(b.streams)
		b.streams = append(b.streams, stream)
		b.streamIdx[stream] = si
	}
	b.events = append(b.events, pending{chunk: int32(last), off: int32(len(b.chunks[last])), stream: int32(si), given: given})
	b.chunks[last] = codec.AppendRecord(b.chunks[last], stream, typ, id, data, meta)
	return nil
}

// AddAt is Add for an event that keeps the time it was first appended
// at (evt import), in unix nanoseconds. Times never decrease along the
// log, so an event older than the log's newest is stored at that newest
// time instead.
func (b *Batch) AddAt(stream, typ, id string, data, meta []byte, t int64) error {
	if err := b.Add(stream, typ, id, data, meta); err != nil {
		return err
	}
	p := &b.events[len(b.events)-1]
	p.timed = true
	binary.LittleEndian.PutUint64(b.record(len(b.events) - 1)[32:], uint64(t))
	return nil
}

// addMarker adds a delete (FlagTombstone) or truncate (FlagTruncate)
// marker that cuts off every version of stream up to cut.
func (b *Batch) addMarker(stream string, flag uint16, cut uint64) error {
	typ := "$truncate"
	if flag == codec.FlagTombstone {
		typ = "$delete"
	}
	if err := b.Add(stream, typ, "", []byte("{}"), nil); err != nil {
		return err
	}
	b.events[len(b.events)-1].marker = flag
	binary.LittleEndian.PutUint64(b.record(len(b.events) - 1)[16:], cut)
	return nil
}

// Expect adds an expected-version check on stream, evaluated against the
// stream's version before the batch.
func (b *Batch) Expect(stream string, e Expectation) {
	if b.expect == nil {
		b.expect = map[string]Expectation{}
	}
	b.expect[stream] = e
}

// Len is the number of events added.
func (b *Batch) Len() int { return len(b.events) }

// Result reports where one event of a batch is stored.
type Result struct {
	Position  uint64
	Stream    string
	Version   uint64
	ID        string
	Time      time.Time
	Duplicate bool // the id was already in the stream; nothing was written for it
}

type streamState struct {
	key           hashKey
	version, last uint64
	cut           uint64 // the heads table's cut value (see cutValue)
	dirty         bool   // an event or marker of it was written in this batch
	created       bool   // its first event is in this batch
	checked       bool   // its expectation held
}

// Append stores the batch atomically and durably (per the sync policy)
// and returns one result per event, in order.
//
// An event whose id the stream already holds (from an earlier call or
// earlier in this batch) is not written again; its result reports the
// original with Duplicate set. A stream's expectation is checked against
// its version before the batch, at its first event that is written: a
// stream whose events in the batch are all such duplicates is a retry
// that already succeeded, and is not checked. Any failed expectation
// fails the whole batch with ErrConflict and writes nothing.
func (s *Store) Append(b *Batch) ([]Result, error) {
	if len(b.events) == 0 && len(b.expect) == 0 {
		return nil, nil
	}
	a, err := s.BeginAppend(b.expect, Expectation{})
	if err != nil {
		return nil, err
	}
	if err := a.Add(b); err != nil {
		a.Abort()
		return nil, err
	}
	return a.Commit()
}

// prevOf reads the prev field of an encoded record (see codec/record.go).
func prevOf(rec []byte) uint64 { return binary.LittleEndian.Uint64(rec[24:]) }

// roll seals the active segment and starts a new one at c.next. Sealing
// is the checkpoint recovery after a reboot relies on: the segment, its
// offsets and the tables are synced before the next segment exists.
func (s *Store) roll(c *commitState, now int64) error {
	sf, err := s.segment(c.active)
	if err != nil {
		return err
	}
	if err := unix.Fdatasync(int(sf.f.Fd())); err != nil {
		s.failed = err
		return fmt.Errorf("sync %s: %w", segmentName(sf.first), err)
	}
	if sf.idx != nil {
		if err := sf.idx.Sync(); err != nil {
			return err
		}
	}
	if err := s.heads.sync(); err != nil {
		return err
	}
	if err := s.ids.sync(); err != nil {
		return err
	}
	// A writer killed between creating a segment and publishing it leaves
	// a file named inside the active segment's range; once the log rolls
	// past it, it would shadow real positions. Remove such orphans first.
	firsts, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	for _, f := range firsts {
		// (active, next]: next itself can only be an orphan here, as
		// prepare adopts a segment at next that holds published data.
		if f > c.active && f <= c.next {
			if err := os.Remove(join(s.dir, segmentName(f))); err != nil {
				return err
			}
			os.Remove(join(s.dir, offsetsName(f)))
		}
	}
	if err := createSegment(s.dir, c.next, now); err != nil {
		return err
	}
	c.active, c.size, c.lastSync = c.next, segmentHeaderSize, now
	s.firsts = nil
	s.sealed = true
	return nil
}

// Join moves the events of o to the end of b (o is left empty). It lets
// several goroutines encode parts of one batch; expectations stay b's.
func (b *Batch) Join(o *Batch) {
	base := len(b.chunks)
	b.chunks = append(b.chunks, o.chunks...)
	if need := len(b.events) + len(o.events); need > cap(b.events) {
		grown := make([]pending, len(b.events), max(need, 2*cap(b.events)))
		copy(grown, b.events)
		b.events = grown
	}
	remap := make([]int, len(o.streams))
	for i, name := range o.streams {
		si, ok := b.streamIdx[name]
		if !ok {
			if b.streamIdx == nil {
				b.streamIdx = map[string]int{}
			}
			si = len(b.streams)
			b.streams = append(b.streams, name)
			b.streamIdx[name] = si
		}
		remap[i] = si
	}
	for _, p := range o.events {
		p.chunk += int32(base)
		p.stream = int32(remap[p.stream])
		b.events = append(b.events, p)
	}
	entropy := o.entropy
	*o = Batch{entropy: entropy}
}

// Streams lists the distinct streams of the batch, in first-seen order.
func (b *Batch) Streams() []string { return b.streams }
