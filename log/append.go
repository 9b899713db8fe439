package log

import (
	cryptorand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
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
}

// newID returns a fresh ULID.
func (b *Batch) newID() string {
	if b.entropy == nil {
		var seed [32]byte
		if _, err := cryptorand.Read(seed[:]); err != nil {
			return ulid.Make().String()
		}
		b.entropy = ulid.Monotonic(rand.NewChaCha8(seed), 0)
	}
	id, err := ulid.New(ulid.Timestamp(time.Now()), b.entropy)
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
	chunk  int32 // index into chunks
	off    int32 // offset of the encoded record in its chunk
	stream int32 // index into streams
	given  bool  // the producer chose the id: it may be a retry
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
	if err := codec.ValidateStream(stream); err != nil {
		return err
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
	si, ok := b.streamIdx[stream]
	if !ok {
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

// Expect adds an expected-version check on stream, evaluated against the
// stream's version before the batch.
func (b *Batch) Expect(stream string, e Expectation) {
	if b.expect == nil {
		b.expect = map[string]Expectation{}
	}
	b.expect[stream] = e
}

// expectOrder lists the streams with expectations: the batch's streams
// first, in order, then any others sorted.
func (b *Batch) expectOrder() []string {
	var out, rest []string
	for _, name := range b.streams {
		if _, ok := b.expect[name]; ok {
			out = append(out, name)
		}
	}
	for name := range b.expect {
		if _, ok := b.streamIdx[name]; !ok {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
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
	version, last, first uint64
	loaded               bool
	dirty                bool
	fresh                int // events of this stream in the batch that are not duplicates
}

// Append stores the batch atomically and durably (per the sync policy)
// and returns one result per event, in order.
//
// An event whose id the stream already holds (from an earlier call or
// earlier in this batch) is not written again; its result reports the
// original with Duplicate set. A stream whose events in the batch are all
// such duplicates is a retry that already succeeded, so its expectation is
// not checked. Any failed expectation fails the whole batch with
// ErrConflict and writes nothing.
func (s *Store) Append(b *Batch) ([]Result, error) {
	if s.lock == nil {
		return nil, errors.New("store opened read-only")
	}
	if s.failed != nil {
		return nil, fmt.Errorf("%w: %v", ErrFailed, s.failed)
	}
	if len(b.events) == 0 {
		return nil, nil
	}
	if err := s.lock.acquire(s.opts.LockTimeout); err != nil {
		return nil, err
	}
	defer s.lock.release()
	c, err := s.prepare()
	if err != nil {
		return nil, err
	}

	results := make([]Result, len(b.events))
	states := make([]streamState, len(b.streams))
	load := func(stream string, st *streamState) *streamState {
		if !st.loaded {
			var vals [headsValues]uint64
			if s.heads.get(keyOf(stream), vals[:]) {
				st.last, st.version, st.first = vals[0], vals[1], vals[2]
			}
			st.loaded = true
		}
		return st
	}
	for i, name := range b.streams {
		load(name, &states[i])
	}

	// Duplicates: ids given by the producer, already stored or repeated.
	dupOf := make([]int, len(b.events)) // index+1 of the earlier event in the batch
	var seen map[hashKey]int
	for i := range b.events {
		p := &b.events[i]
		st := &states[p.stream]
		if !p.given {
			st.fresh++
			continue
		}
		name := b.streams[p.stream]
		id := string(b.id(i))
		key := idKey(name, id)
		if j, ok := seen[key]; ok {
			dupOf[i] = j + 1
			continue
		}
		var vals [idsValues]uint64
		if s.ids.get(key, vals[:]) && vals[0] < c.next {
			rec, err := s.recordAt(vals[0], &c)
			if err != nil {
				return nil, err
			}
			// An entry naming another event is stale (an append that failed
			// or died after filling the index): not a duplicate.
			if string(rec.Stream) == name && string(rec.ID) == id {
				results[i] = Result{Position: rec.Position, Stream: name, Version: rec.Version, ID: id,
					Time: time.Unix(0, rec.Time).UTC(), Duplicate: true}
				continue
			}
		}
		if seen == nil {
			seen = map[hashKey]int{}
		}
		seen[key] = i
		st.fresh++
	}

	// Expectations, against the versions before the batch, in the order
	// the streams appear so a conflict names the same stream every time.
	for _, stream := range b.expectOrder() {
		e := b.expect[stream]
		var st *streamState
		if i, ok := b.streamIdx[stream]; ok {
			st = &states[i]
			if st.fresh == 0 {
				continue // every event is a stored duplicate: an idempotent retry
			}
		} else {
			st = load(stream, &streamState{})
		}
		if !e.holds(st.version) {
			return nil, fmt.Errorf("%w: stream %s is at version %d, expected %s", ErrConflict, stream, st.version, e)
		}
	}

	// Positions and versions.
	now := time.Now().UnixNano()
	if now < c.lastTime {
		now = c.lastTime // times never go back in the log
	}
	pos := c.next
	compact := false
	lastWritten := -1
	for i := range b.events {
		p := &b.events[i]
		if results[i].Duplicate || dupOf[i] != 0 {
			compact = true
			continue
		}
		st := &states[p.stream]
		st.version++
		if st.version == 1 {
			st.first = pos
		}
		prev := st.last
		if st.version == 1 {
			prev = 0
		}
		codec.PatchRecord(b.record(i), pos, st.version, prev, now, 0)
		st.last, st.dirty = pos, true
		results[i] = Result{Position: pos, Stream: b.streams[p.stream], Version: st.version, ID: string(b.id(i)), Time: time.Unix(0, now).UTC()}
		lastWritten = i
		pos++
	}
	for i, j := range dupOf {
		if j != 0 {
			results[i] = results[j-1]
			results[i].Duplicate = true
		}
	}
	if lastWritten < 0 {
		return results, nil // all duplicates
	}
	last := b.record(lastWritten)
	r := results[lastWritten]
	codec.PatchRecord(last, r.Position, r.Version, prevOf(last), now, codec.FlagEndOfBatch)
	out := b.chunks
	if compact {
		var keep []byte
		for i := range b.events {
			if !results[i].Duplicate {
				keep = append(keep, b.record(i)...)
			}
		}
		out = [][]byte{keep}
	}
	var size int64
	for _, chunk := range out {
		size += int64(len(chunk))
	}

	if c.size > segmentHeaderSize && c.size+size > s.opts.SegmentSize {
		if err := s.roll(&c, now); err != nil {
			return nil, err
		}
	}
	written := pos - c.next
	newStreams := uint64(0)
	for i := range states {
		if st := &states[i]; st.dirty && st.first >= c.next {
			newStreams++
		}
	}
	tablesOK := s.reserveTables(newStreams, written) == nil

	// The id index is only read by writers, under the lock, and they check
	// every hit against the record it names: it may run ahead of the
	// commit. So it is filled while the batch is written and synced, on
	// the other core. The heads table is read by readers without a lock:
	// it is updated only after the publish.
	idsDone := make(chan struct{})
	go func() {
		defer close(idsDone)
		if !tablesOK {
			return
		}
		for i, p := range b.events {
			if !results[i].Duplicate {
				s.ids.put(idKeyBytes(b.streams[p.stream], b.id(i)), []uint64{results[i].Position})
			}
		}
	}()
	err = s.write(&c, out, c.next, now)
	<-idsDone
	if err != nil {
		return nil, err
	}
	c.seq++
	c.next = pos
	c.size += size
	c.lastTime = now
	if err := writeCommit(s.commit, &c); err != nil {
		s.failed = err
		return nil, fmt.Errorf("publish commit: %w", err)
	}

	// The heads table, after the publish: a reader bounds it by the
	// commit, and a crash here leaves a gap the next writer fills.
	if !tablesOK {
		return results, nil // acknowledged: the next writer repairs the tables
	}
	for i := range states {
		if st := &states[i]; st.dirty {
			s.heads.put(keyOf(b.streams[i]), []uint64{st.last, st.version, st.first})
		}
	}
	s.heads.setApplied(pos - 1)
	s.ids.setApplied(pos - 1)
	return results, nil
}

// prevOf reads the prev field of an encoded record (see codec/record.go).
func prevOf(rec []byte) uint64 { return binary.LittleEndian.Uint64(rec[24:]) }

// timeOf reads the time field of an encoded record.
func timeOf(rec []byte) int64 { return int64(binary.LittleEndian.Uint64(rec[32:])) }

// write puts the records and their offsets into the active segment and
// syncs per policy. On failure it cuts the segment back to the committed
// size, so nothing unacknowledged is left for recovery to adopt, and if
// it cannot be sure of that the store refuses further appends.
func (s *Store) write(c *commitState, out [][]byte, firstPos uint64, now int64) error {
	sf, err := s.segment(c.active)
	if err != nil {
		return err
	}
	if err := s.ensureIdx(sf); err != nil {
		return err
	}
	fail := func(what string, err error) error {
		if terr := sf.f.Truncate(c.size); terr != nil || what == "sync" {
			// After a failed fsync the page cache may hold data the disk
			// does not: acknowledge nothing more from this process.
			s.failed = err
		}
		return fmt.Errorf("%s %s: %w", what, segmentName(sf.first), err)
	}
	var entries []byte
	at := c.size
	for _, chunk := range out {
		if _, err := sf.f.WriteAt(chunk, at); err != nil {
			return fail("write", err)
		}
		for off := 0; off < len(chunk); {
			entries = appendOffsetEntry(entries, at+int64(off), timeOf(chunk[off:]))
			off += codec.RecordLength(chunk[off:])
		}
		at += int64(len(chunk))
	}
	if _, err := sf.idx.WriteAt(entries, int64(firstPos-sf.first)*offsetEntrySize); err != nil {
		return fail("write offsets of", err)
	}
	switch s.opts.Sync {
	case SyncAlways:
		if err := unix.Fdatasync(int(sf.f.Fd())); err != nil {
			return fail("sync", err)
		}
		c.lastSync = now
	case SyncInterval:
		if time.Duration(now-c.lastSync) >= s.opts.SyncInterval {
			if err := unix.Fdatasync(int(sf.f.Fd())); err != nil {
				return fail("sync", err)
			}
			c.lastSync = now
		}
	}
	return nil
}

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
