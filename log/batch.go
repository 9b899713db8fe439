package log

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/evtdev/evt/codec"
)

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
	cond   *Condition // FailIfMatch: nil, or a condition with queries
	// Distinct streams of the batch: events refer to them by index, so
	// the append resolves each stream once rather than once per event.
	streams   []string
	streamIdx map[string]int
	// entropy makes this batch's ULIDs: monotonic, seeded once from the
	// runtime's random generator (see newID). ulid.Make's global source takes a lock per id,
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
		// The seed comes from the runtime's generator, ChaCha8 seeded
		// from the kernel's randomness when the process started: ids of
		// different processes are as unlikely to collide as with
		// crypto/rand, whose first read in a process (setting up the
		// vDSO getrandom state) costs a one-event append 0.05 ms.
		var seed [32]byte
		for i := 0; i < len(seed); i += 8 {
			binary.LittleEndian.PutUint64(seed[i:], rand.Uint64())
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

// BatchEvent is one event of a batch as a store sees it when it writes
// the batch.
type BatchEvent struct {
	// Record is the event encoded in codec's record framing, with its
	// position, version, back-pointer and (unless Timed) time still to be
	// set (codec.PatchRecord). It aliases the batch's memory: a store may
	// patch it in place.
	Record []byte
	Stream int // index into Streams
	// GivenID says the producer chose the id, so the event may be a retry
	// of one already stored.
	GivenID bool
	// Timed says the producer chose the time (AddAt): it is in Record.
	Timed bool
	// Marker is codec.FlagTombstone or codec.FlagTruncate for a delete or
	// truncate marker (AddMarker), 0 for an event.
	Marker uint16
}

// ID returns the event's id, read from its encoded record.
func (e BatchEvent) ID() []byte {
	rec := e.Record
	start := codec.RecordHeaderSize + int(rec[42]) + int(rec[43])
	return rec[start : start+int(rec[44])]
}

// Event returns event i of the batch, 0 <= i < Len().
func (b *Batch) Event(i int) BatchEvent {
	p := &b.events[i]
	return BatchEvent{Record: b.record(i), Stream: int(p.stream), GivenID: p.given, Timed: p.timed, Marker: p.marker}
}

// Size is the number of bytes of the batch's encoded records.
func (b *Batch) Size() int64 {
	var size int64
	for _, ch := range b.chunks {
		size += int64(len(ch))
	}
	return size
}

// Expectations returns the batch's expected-version checks by stream.
func (b *Batch) Expectations() map[string]Expectation { return b.expect }

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

// AddMarker adds a delete (codec.FlagTombstone) or truncate
// (codec.FlagTruncate) marker that cuts off every version of stream up to
// cut, for a store that records cuts in its
func (b *Batch) AddMarker(stream string, flag uint16, cut uint64) error {
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

// Join moves the events of o to the end of b (o is left empty). It lets
// several goroutines encode parts of one batch; expectations and the
// condition stay b's.
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

// BatchWriter is implemented by stores that write a batch while it is
// still being parsed, so that a bulk append from a file overlaps parsing
// with writing and never holds the whole batch in memory. A store
// without it is given the whole batch by Append.
type BatchWriter interface {
	// BeginAppend readies one atomic batch: what Add is given is
	// committed by Commit as one batch, under the same guarantees as
	// Store.Append, or not at all. expect holds expectations per
	// stream; all, unless ExpectAny, applies to every stream the batch
	// holds events of. The local store holds its append lock from here
	// to Commit or Abort.
	BeginAppend(ctx context.Context, expect map[string]Expectation, all Expectation, opts AppendOptions) (Appender, error)
}

// AppendOptions tune a streamed append.
type AppendOptions struct {
	// NoResults keeps no result per event (a million-event import):
	// Commit returns none and Duplicates counts the events not written
	// again.
	NoResults bool
	// SizeHint, when not 0, is about how many bytes the whole batch will
	// take, where only its first part is known at BeginAppend (a batch
	// written as it is parsed): the local store seals its active segment
	// first when the batch will not fit, instead of overshooting the
	// segment size.
	SizeHint int64
	// Condition, when not nil, makes the batch conditional (see
	// Condition, Batch.FailIfMatch): checked atomically with Commit,
	// against the log before the batch; a failed check is ErrConflict
	// from Commit and nothing is stored. A store that cannot check it
	// fails BeginAppend with ErrUnsupported.
	Condition *Condition
}

// Appender is one batch being written (BatchWriter.BeginAppend).
type Appender interface {
	// Add adds the events of b (and its expectations' checks). A failed
	// expectation fails with ErrConflict; after an error, only Abort.
	Add(b *Batch) error
	// Commit makes every event added durable and visible at once and
	// returns their results (see AppendOptions.NoResults).
	Commit() ([]Result, error)
	// Abort drops everything added: nothing of it was ever visible.
	Abort()
	// Duplicates counts the events added that the store already held
	// (idempotent retries), which Commit does not write again.
	Duplicates() int
}

// Slice returns a new batch of events i through j-1 of b, with copies of
// their records and none of b's expectations: a store whose appends are
// atomic only up to a limit writes a big import in slices (log/natsjs).
func (b *Batch) Slice(i, j int) *Batch {
	nb := &Batch{}
	var size int
	for k := i; k < j; k++ {
		size += len(b.record(k))
	}
	chunk := make([]byte, 0, size)
	for k := i; k < j; k++ {
		p := b.events[k]
		name := b.streams[p.stream]
		si, ok := nb.streamIdx[name]
		if !ok {
			if nb.streamIdx == nil {
				nb.streamIdx = map[string]int{}
			}
			si = len(nb.streams)
			nb.streams = append(nb.streams, name)
			nb.streamIdx[name] = si
		}
		p.chunk, p.off, p.stream = 0, int32(len(chunk)), int32(si)
		chunk = append(chunk, b.record(k)...)
		nb.events = append(nb.events, p)
	}
	nb.chunks = [][]byte{chunk}
	return nb
}
