package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// Appender writes one atomic batch in parts: the parts are written to the
// active segment past the committed end as they come, and nothing is
// visible until Commit publishes the new end; Abort (or a crash) leaves
// the store as it was, because recovery drops records that no
// end-of-batch record follows.
//
// ctx, given to BeginAppend, cancels the batch until its commit point
// (see log.Committing): Add and Commit then abort it and return ctx's
// error; from the commit point on, Commit completes whatever ctx says.
//
// It holds the append lock from Begin to Commit or Abort. A bulk import
// from a file uses it to overlap parsing with writing: the lock is held
// about as long as the write and sync of the whole batch would hold it
// anyway. Every part is validated (encoded by Batch.Add) before it is
// added, and a bad part aborts the batch.
type Appender struct {
	s         *Store
	ctx       context.Context
	c         commitState // the committed state at Begin
	expect    map[string]log.Expectation
	expectAll log.Expectation // for every stream of the batch (--expect with envelopes)
	cond      *log.Condition  // checked at Commit (condition.go); nil: none
	now       int64
	lastTime  int64                    // time of the newest record given so far
	pos       uint64                   // next position to give
	written   int64                    // bytes written past c.size
	out       []byte                   // records not yet written; the last one is held for its end-of-batch flag
	lastRec   int                      // offset in out of the last record, -1 if none
	idx       []byte                   // offsets entries of every record of the batch
	states    map[hashKey]*streamState // by keyOf(stream): fixed-size keys look up faster than names
	results   []log.Result
	idxDone   int64        // offsets entries already written
	idsWork   [][]idPut    // fresh ids not yet in the table, in blocks: never copied to grow
	idsHeld   int          // entries in idsWork
	idsSpare  [][]idPut    // emptied blocks of idsWork, to fill again
	idRoom    uint64       // ids the table has room for without growing (see putID)
	buf       []byte       // scratch for reading back the batch's records
	given     int64        // bytes of the records given to Add, duplicates included
	hits      storedReader // windows for checking id hits (dupread.go)
	sf        *segFile
	done      bool
	synced    bool
	added     int // events added, duplicates included

	// noResults skips keeping a result per event (evt append -q, evt
	// import: a million events): Commit then returns none, and
	// Duplicates says how many events were not written again.
	noResults bool
	// duplicates counts the events that were not written again.
	duplicates int
	// sizeHint, when not 0, is about how many bytes the whole batch
	// will take (log.AppendOptions.SizeHint).
	sizeHint int64
}

var _ log.Appender = (*Appender)(nil)

// Duplicates counts the events added that were not written again.
func (a *Appender) Duplicates() int { return a.duplicates }

// BeginAppend takes the append lock and readies a batch (log.BatchWriter).
func (s *Store) BeginAppend(ctx context.Context, expect map[string]log.Expectation, all log.Expectation, opts log.AppendOptions) (log.Appender, error) {
	a, err := s.beginAppend(ctx, expect, all)
	if err != nil {
		return nil, err
	}
	a.noResults, a.sizeHint = opts.NoResults, opts.SizeHint
	a.cond = opts.Condition
	return a, nil
}

type idPut struct {
	key hashKey
	pos uint64
}

// flushAt is how many bytes of records an Appender gathers before it
// writes them.
const flushAt = 4 << 20

// beginAppend takes the append lock and readies a batch. expect holds
// expectations per stream; all, unless ExpectAny, applies to every stream
// the batch holds events of. The wait for the lock ends when ctx is done
// or Options.LockTimeout passes.
func (s *Store) beginAppend(ctx context.Context, expect map[string]log.Expectation, all log.Expectation) (*Appender, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.lock == nil {
		return nil, errors.New("store opened read-only")
	}
	if s.failed != nil {
		return nil, fmt.Errorf("%w: %v", log.ErrFailed, s.failed)
	}
	if err := s.lock.acquire(ctx, s.opts.LockTimeout); err != nil {
		return nil, err
	}
	c, err := s.prepare()
	if err != nil {
		s.lock.release()
		return nil, err
	}
	now := time.Now().UnixNano()
	if now < c.lastTime {
		now = c.lastTime // times never go back in the log
	}
	// The newest time of the log, below which no event may go. A log
	// without events has none: the store's creation time, which the
	// commit file holds until the first append, must not move the times
	// AddAt keeps (an import into a new store keeps them exactly).
	newest := c.lastTime
	if c.next == 1 {
		newest = 0
	}
	return &Appender{s: s, ctx: ctx, c: c, expect: expect, expectAll: all, now: now, lastTime: newest, pos: c.next, lastRec: -1,
		states: map[hashKey]*streamState{}}, nil
}

func (a *Appender) state(name string) *streamState {
	key := keyOf(name)
	st := a.states[key]
	if st == nil {
		st = &streamState{key: key, name: name}
		var vals [headsValues]uint64
		if a.s.heads.get(key, vals[:]) {
			st.last, st.version, st.cut = vals[0], vals[1], vals[2]
		}
		a.states[key] = st
	}
	return st
}

func (a *Appender) expectation(name string) log.Expectation {
	if e, ok := a.expect[name]; ok {
		return e
	}
	return a.expectAll
}

// Add appends the events of b (which it empties of nothing; b may be
// reused after). An event whose id its stream already holds, or that an
// earlier event of this batch had, is not written: its result reports the
// original. A stream's expectation is checked before its first event
// that is written, against its version before the batch; a failure is
// ErrConflict, and the caller must Abort.
func (a *Appender) Add(b *log.Batch) error {
	if a.done {
		return errors.New("append already finished")
	}
	if err := a.ctx.Err(); err != nil {
		a.Abort()
		return err
	}
	n := b.Len()
	a.given += b.Size()
	if !a.noResults {
		a.results = slices.Grow(a.results, n)
	}
	// Resolve each of b's streams once, not once per event.
	streams := b.Streams()
	sub := make([]*streamState, len(streams))
	for i := range n {
		p := b.Event(i)
		name := streams[p.Stream]
		var key hashKey
		if p.GivenID {
			// A retry of a stored event, or of one earlier in this batch:
			// the batch's given ids go into the table as they are
			// written (see putID), so one lookup finds both.
			id := p.ID()
			key = idKeyBytes(name, id)
			if r, ok, err := a.stored(key, name, id); err != nil {
				return err
			} else if ok {
				// A retry needs no stream state (a re-import of a
				// million events would look up every stream), unless
				// the stream has an expectation: Commit checks those of
				// streams without state as streams without events.
				if _, ok := a.expect[name]; ok && sub[p.Stream] == nil {
					sub[p.Stream] = a.state(name)
				}
				a.duplicate(r)
				continue
			}
		} else {
			key = idKeyBytes(name, p.ID())
		}
		st := sub[p.Stream]
		if st == nil {
			st = a.state(name)
			sub[p.Stream] = st
		}
		if !st.checked {
			if e := a.expectation(name); !e.Holds(st.version) {
				return fmt.Errorf("%w: stream %s is at version %d, expected %s", log.ErrConflict, name, st.version, e)
			}
			st.checked = true
		}
		if a.sf == nil {
			if err := a.openSegment(b); err != nil {
				return err
			}
		}
		rec := p.Record
		if p.Marker != 0 {
			a.addMarker(rec, name, st, p.Marker)
			continue
		}
		st.version++
		prev := st.last
		if st.version == 1 {
			st.created, prev = true, 0
		}
		t := a.now
		if p.Timed {
			t = int64(binary.LittleEndian.Uint64(rec[32:]))
		}
		// Times never decrease along the log, whatever AddAt was given.
		t = max(t, a.lastTime)
		a.lastTime = t
		codec.PatchRecord(rec, a.pos, st.version, prev, t, 0)
		st.cut &^= cutDeleted // the stream lives again
		a.idx = appendOffsetEntry(a.idx, a.c.size+a.written+int64(len(a.out)), t)
		a.lastRec = len(a.out)
		a.out = append(a.out, rec...)
		st.last, st.dirty = a.pos, true
		r := log.Result{Position: a.pos, Stream: name, Version: st.version, Time: time.Unix(0, t).UTC()}
		if !a.noResults {
			r.ID = string(p.ID())
		}
		a.record(r)
		if p.GivenID {
			if err := a.putID(key, a.pos, b, n-i); err != nil {
				return err
			}
		} else if err := a.holdID(key, a.pos, b, n-i); err != nil {
			return err
		}
		a.pos++
		if len(a.out) >= flushAt {
			if err := a.flush(false); err != nil {
				return err
			}
		}
	}
	return nil
}

// openSegment readies the active segment for the batch's first record,
// rolling to a new one first if b would not fit. It waits for a record to
// write: a batch of duplicates, or one that fails its expectation, must
// leave no new segment behind.
func (a *Appender) openSegment(b *log.Batch) error {
	size := max(b.Size(), a.sizeHint)
	if a.c.size > segmentHeaderSize && a.c.size+size > a.s.opts.SegmentSize {
		if err := a.s.roll(&a.c, a.now); err != nil {
			return err
		}
	}
	sf, err := a.s.segment(a.c.active)
	if err != nil {
		return err
	}
	if err := a.s.ensureIdx(sf); err != nil {
		return err
	}
	a.sf = sf
	return nil
}

// addMarker writes a delete or truncate marker (see codec.Record.Marker).
// It takes no version: the stream's head stays where it is, only its cut
// moves.
func (a *Appender) addMarker(rec []byte, name string, st *streamState, flag uint16) {
	cut := binary.LittleEndian.Uint64(rec[16:])
	t := max(a.now, a.lastTime)
	a.lastTime = t
	codec.PatchRecord(rec, a.pos, cut, 0, t, flag)
	a.idx = appendOffsetEntry(a.idx, a.c.size+a.written+int64(len(a.out)), t)
	a.lastRec = len(a.out)
	a.out = append(a.out, rec...)
	st.cut = cutValue(st.cut, flag, cut)
	st.dirty = true
	a.record(log.Result{Position: a.pos, Stream: name, Version: cut, Time: time.Unix(0, t).UTC()})
	a.pos++
}

// record notes the result of the next event, unless NoResults.
func (a *Appender) record(r log.Result) {
	a.added++
	if !a.noResults {
		a.results = append(a.results, r)
	}
}

func (a *Appender) duplicate(r log.Result) {
	r.Duplicate = true
	a.duplicates++
	a.record(r)
}

// The id index during a batch. The table may run ahead of the commit
// (every hit is checked against the record it names, and flushIDs drops
// entries past the committed end), so a batch puts its ids as it goes
// rather than holding 24 bytes per event until Commit:
//
//   - a given id (a possible retry: evt import, envelopes with ids) goes
//     in at once, which is how a later event of the same batch with that
//     id finds it (stored, then batchRecord): no map of the batch's ids;
//   - a fresh id (a ULID evt made) cannot be a retry, so it waits in
//     idsWork for Commit to put while the batch syncs, on another core,
//     up to idsHeldMax of them; past that, a block goes in at once.
//
// A batch's memory is then one result per event only when results are
// kept (not -q, not import), whatever its size.
// idsHeldMax is how many fresh ids a batch holds for Commit (24 MiB);
// a variable so a test can make it small.
var idsHeldMax = 1 << 20

const idsBlockMax = 1 << 16 // entries of one idsWork block

// putID puts one id of the batch into the table, first making room for
// it and the ids still to come (idsWanted: rest is how many events of b
// are left, this one included) when it has none left. A table that cannot grow fails the batch: a later retry
// of the id in this batch would not be found.
func (a *Appender) putID(key hashKey, pos uint64, b *log.Batch, rest int) error {
	if a.idRoom == 0 {
		if err := a.reserveIDs(max(a.idsWanted(b, rest), 1)); err != nil {
			return err
		}
	}
	a.s.ids.put(key, []uint64{pos})
	a.idRoom--
	return nil
}

// idsWanted is how many ids to make room for when the table is full at
// an event of b with rest events left in b, and the batch's events not
// given yet when its size is known (SizeHint less the bytes added so far,
// duplicates included, at b's bytes per event), so a
// big import grows the table once, as a whole batch did at Commit, not
// once per doubling (each growth rewrites and syncs the table).
func (a *Appender) idsWanted(b *log.Batch, rest int) uint64 {
	want := uint64(rest)
	if a.sizeHint > 0 && b.Len() > 0 {
		perEvent := max(b.Size()/int64(b.Len()), 1)
		want += uint64(max((a.sizeHint-a.given)/perEvent, 0))
	}
	return want
}

// reserveIDs makes room in the table for n more ids.
func (a *Appender) reserveIDs(n uint64) error {
	ids, err := a.s.ids.reserve(n)
	if err != nil {
		return fmt.Errorf("id index: %w", err)
	}
	a.s.ids = ids
	a.idRoom = n
	return nil
}

// holdID keeps a fresh id for Commit to put, or puts the held ones now
// when there are idsHeldMax of them, making room for them and the ids
// still to come (idsWanted of b, with rest events of it left).
func (a *Appender) holdID(key hashKey, pos uint64, b *log.Batch, rest int) error {
	if a.idsHeld >= idsHeldMax {
		want := a.idsWanted(b, rest)
		if err := a.reserveIDs(uint64(a.idsHeld) + want); err != nil {
			return err
		}
		a.putHeld()
		a.idRoom = want
		// The blocks are filled again, not left to the collector:
		// garbage of 24 MiB a hold would let the heap grow by as much.
		for _, block := range a.idsWork {
			a.idsSpare = append(a.idsSpare, block[:0])
		}
		a.idsWork = a.idsWork[:0]
	}
	if k := len(a.idsWork) - 1; k < 0 || len(a.idsWork[k]) == cap(a.idsWork[k]) {
		if n := len(a.idsSpare); n > 0 {
			a.idsWork = append(a.idsWork, a.idsSpare[n-1])
			a.idsSpare = a.idsSpare[:n-1]
		} else {
			// Blocks double from 64 to 64k entries: a one-event append
			// must not clear 1.5 MB.
			size := 64
			if k >= 0 {
				size = min(2*cap(a.idsWork[k]), idsBlockMax)
			}
			a.idsWork = append(a.idsWork, make([]idPut, 0, size))
		}
	}
	a.idsWork[len(a.idsWork)-1] = append(a.idsWork[len(a.idsWork)-1], idPut{key, pos})
	a.idsHeld++
	return nil
}

// putHeld puts the held fresh ids into the table, which has room.
func (a *Appender) putHeld() {
	for _, block := range a.idsWork {
		for _, w := range block {
			a.s.ids.put(w.key, []uint64{w.pos})
		}
	}
	a.idsHeld = 0
}

// batchRecord reads back the record this batch gave position pos
// (c.next <= pos < a.pos): from out if it is not written yet, else from
// the segment. Its offset is in the batch's offsets entries, in idx or
// already in the offsets file.
func (a *Appender) batchRecord(pos uint64) (codec.Record, error) {
	i := int64(pos - a.c.next)
	var ent []byte
	if i < a.idxDone {
		var b [offsetEntrySize]byte
		at := (int64(a.c.next-a.sf.first) + i) * offsetEntrySize
		if _, err := a.sf.idx.ReadAt(b[:], at); err != nil {
			return codec.Record{}, fmt.Errorf("read offsets of %s: %w", segmentName(a.sf.first), err)
		}
		ent = b[:]
	} else {
		j := (i - a.idxDone) * offsetEntrySize
		ent = a.idx[j : j+offsetEntrySize]
	}
	off := int64(binary.LittleEndian.Uint64(ent))
	if end := a.c.size + a.written; off >= end {
		rec := a.out[off-end:]
		return codec.DecodeRecord(rec[:codec.RecordLength(rec)])
	}
	rec, buf, err := readRecordAt(a.sf.f, segmentName(a.sf.first), off, a.buf)
	a.buf = buf
	return rec, err
}

// stored looks an id up in the index (the table, then the runs: see
// idindex.go) and checks each hit against the log.
func (a *Appender) stored(key hashKey, name string, id []byte) (log.Result, bool, error) {
	var vals [idsValues]uint64
	if a.s.ids.get(key, vals[:]) {
		if r, ok, err := a.storedAt(vals[0], name, id); err != nil || ok {
			return r, ok, err
		}
	}
	runs, err := a.s.idRuns()
	if err != nil {
		return log.Result{}, false, err
	}
	for i := len(runs) - 1; i >= 0; i-- { // newest first: retries are mostly recent
		var cands [4]uint64
		found := cands[:0]
		runs[i].candidates(key, func(p uint64) bool {
			found = append(found, p)
			return true
		})
		for _, p := range found {
			if r, ok, err := a.storedAt(p, name, id); err != nil || ok {
				return r, ok, err
			}
		}
	}
	return log.Result{}, false, nil
}

// storedAt reports whether the event at pos is id in stream name.
func (a *Appender) storedAt(pos uint64, name string, id []byte) (log.Result, bool, error) {
	if pos == 0 || pos >= a.pos {
		return log.Result{}, false, nil
	}
	var rec codec.Record
	var err error
	if pos >= a.c.next {
		rec, err = a.batchRecord(pos) // earlier in this batch
	} else {
		rec, err = a.recordAt(pos)
	}
	if errors.Is(err, log.ErrNotFound) {
		// Compaction dropped the event: the id is free again. (Retention
		// outlives retries by far; a retry that late appends anew.)
		return log.Result{}, false, nil
	}
	if err != nil {
		return log.Result{}, false, err
	}
	// An entry naming another event is stale (an append that failed or
	// died after filling the index): not a duplicate.
	if string(rec.Stream) != name || string(rec.ID) != string(id) {
		return log.Result{}, false, nil
	}
	return log.Result{Position: rec.Position, Stream: name, Version: rec.Version, ID: string(id),
		Time: time.Unix(0, rec.Time).UTC(), Duplicate: true}, true, nil
}

// flush writes the gathered records; unless final, the last one stays
// behind so Commit can flag it as the end of the batch.
func (a *Appender) flush(final bool) error {
	n := len(a.out)
	if !final {
		n = a.lastRec
	}
	if n <= 0 {
		return nil
	}
	if !final {
		// A big batch stops between its writes (the final one is past
		// the commit point).
		if err := a.ctx.Err(); err != nil {
			a.Abort()
			return err
		}
	}
	if _, err := a.sf.f.WriteAt(a.out[:n], a.c.size+a.written); err != nil {
		return a.fail("write", err)
	}
	a.written += int64(n)
	rest := copy(a.out, a.out[n:])
	a.out = a.out[:rest]
	if a.lastRec >= n {
		a.lastRec -= n
	}
	return a.writeIdx()
}

// writeIdx writes the offsets entries gathered so far, so they never
// pile up for a million-event batch. Entries past the committed end are
// never read, and recovery cuts them.
func (a *Appender) writeIdx() error {
	if len(a.idx) == 0 {
		return nil
	}
	at := (int64(a.c.next-a.sf.first) + a.idxDone) * offsetEntrySize
	if _, err := a.sf.idx.WriteAt(a.idx, at); err != nil {
		return a.fail("write offsets of", err)
	}
	a.idxDone += int64(len(a.idx) / offsetEntrySize)
	a.idx = a.idx[:0]
	return nil
}

// fail cuts the segment back to the committed end after a failed write
// or sync; if it cannot, or the sync failed, this process stops
// appending: the page cache may hold data the disk does not.
func (a *Appender) fail(what string, err error) error {
	if terr := a.sf.f.Truncate(a.c.size); terr != nil || what == "sync" {
		a.s.failed = err
	}
	a.cutOffsets()
	a.done = true
	a.s.lock.release()
	// An *fs.PathError names the operation and the file already ("write
	// /store/00000000000000000001.seg: no space left on device"); a
	// prefix would name the file twice.
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s %s: %w", what, segmentName(a.sf.first), err)
}

// Abort drops what was written and releases the lock.
func (a *Appender) Abort() {
	if a.done {
		return
	}
	a.done = true
	if a.sf != nil && a.written > 0 {
		if err := a.sf.f.Truncate(a.c.size); err != nil {
			a.s.failed = err // recovery would drop it, but be sure: no more appends here
		}
	}
	a.cutOffsets()
	a.s.lock.release()
}

// cutOffsets drops the offsets entries written for the batch, which no
// reader reads and which would otherwise stay in the file (a big import
// that was interrupted leaves megabytes of them) until the next writer
// overwrites them, or for good once the segment is sealed.
func (a *Appender) cutOffsets() {
	if a.sf != nil && a.sf.idx != nil && a.idxDone > 0 {
		a.sf.idx.Truncate(int64(a.c.next-a.sf.first) * offsetEntrySize)
	}
}

// Commit writes the rest, syncs per policy, publishes the new end and
// updates the tables. It returns one result per event added, in order.
func (a *Appender) Commit() ([]log.Result, error) {
	if a.done {
		return nil, errors.New("append already finished")
	}
	// Expectations of streams that have no event in the batch.
	var others []string
	for name := range a.expect {
		if a.states[keyOf(name)] == nil {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	for _, name := range others {
		if e, st := a.expect[name], a.state(name); !e.Holds(st.version) {
			a.Abort()
			return nil, fmt.Errorf("%w: stream %s is at version %d, expected %s", log.ErrConflict, name, st.version, e)
		}
	}
	if a.lastRec < 0 && a.written == 0 {
		a.done = true
		a.s.lock.release()
		return a.results, nil // nothing new: all duplicates, or no events
	}
	// The condition, against the log before the batch; a batch of
	// duplicates only (a retry that succeeded) was not checked above.
	if err := a.checkCondition(); err != nil {
		a.Abort()
		return nil, err
	}
	// The commit point: the write below of the batch's last record, the
	// one flagged end-of-batch, makes the batch one that recovery keeps
	// even if this process dies before publishing it. Up to here an
	// interrupt drops the batch; from here on it is ignored.
	if err := a.ctx.Err(); err != nil {
		a.Abort()
		return nil, err
	}
	log.Committing(a.ctx)
	defer func() {
		if !a.done {
			a.done = true
			a.s.lock.release()
		}
	}()
	last := a.out[a.lastRec:]
	codec.PatchRecord(last, binary.LittleEndian.Uint64(last[8:]), binary.LittleEndian.Uint64(last[16:]),
		prevOf(last), int64(binary.LittleEndian.Uint64(last[32:])), binary.LittleEndian.Uint16(last[40:])|codec.FlagEndOfBatch)

	var created []string
	for _, st := range a.states {
		if st.created {
			created = append(created, st.name)
		}
	}
	newStreams := uint64(len(created))
	// Before the batch is complete on disk, so the name index never
	// misses a committed stream (see namesFile).
	if err := a.s.noteNames(created); err != nil {
		return nil, err
	}
	tablesOK := a.s.reserveTables(newStreams, uint64(a.idsHeld)) == nil

	// The id index is only read by writers, under the lock, and they check
	// every hit against the record it names: it may run ahead of the
	// commit. So it is filled while the batch is written and synced, on
	// the other core. The heads table is read by readers without a lock:
	// it is updated only after the publish. A small batch fills it here
	// first: a goroutine would cost more than the puts, and for a
	// one-event `evt append` it woke a second thread the process then had
	// to create and tear down.
	putIDs := func() {
		if tablesOK {
			a.putHeld()
		}
	}
	var err error
	if a.idsHeld <= inlineIDPuts {
		putIDs()
		err = a.finish()
	} else {
		idsDone := make(chan struct{})
		go func() {
			defer close(idsDone)
			putIDs()
		}()
		err = a.finish()
		<-idsDone
	}
	if err != nil {
		return nil, err
	}
	c := a.c
	c.seq++
	c.next = a.pos
	c.size += a.written
	c.lastTime = a.lastTime
	if a.s.opts.Sync == SyncAlways || a.synced {
		c.lastSync = a.now
	}
	if err := writeCommit(a.s.commit, &c); err != nil {
		a.s.failed = err
		return nil, fmt.Errorf("publish commit: %w", err)
	}
	if !tablesOK {
		return a.results, nil // acknowledged: the next writer repairs the tables
	}
	for _, st := range a.states {
		if st.dirty {
			a.s.heads.put(st.key, []uint64{st.last, st.version, st.cut})
			if st.cut != 0 {
				a.s.heads.setCuts()
			}
		}
	}
	a.s.heads.setApplied(a.pos - 1)
	a.s.ids.setApplied(a.pos - 1)
	a.s.maybeMergeNames()
	a.done = true
	a.s.lock.release()
	if a.s.mergeDue {
		// After the lock: other writers go on while the runs merge.
		a.s.mergeDueRuns(context.WithoutCancel(a.ctx))
	}
	return a.results, nil
}

// inlineIDPuts is the most ids Commit puts into the id index itself
// rather than on another goroutine while it syncs.
const inlineIDPuts = 64

// finish writes the last records and the offsets, then syncs.
func (a *Appender) finish() error {
	if err := a.flush(true); err != nil {
		return err
	}
	if err := a.writeIdx(); err != nil {
		return err
	}
	sync := a.s.opts.Sync == SyncAlways ||
		a.s.opts.Sync == SyncInterval && time.Duration(a.now-a.c.lastSync) >= a.s.opts.SyncInterval
	if sync {
		if err := a.sf.f.Datasync(); err != nil {
			return a.fail("sync", err)
		}
		a.synced = true
	}
	return nil
}
