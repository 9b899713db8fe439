package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

type streamCheck struct{ last, version, cut uint64 }

// Verify checks every record of every segment (checksums, dense
// positions, versions and back-pointers, times, batch ends) and every
// derived file against them. It takes no append lock (only the compaction
// lock, so no segment is swapped under it) and changes nothing; it
// returns the first problem found as a *CorruptError naming the file and
// offset. A ctx done stops it within a few megabytes of reading, with
// ctx's error; waiting for a compaction to finish ends then too.
func (s *Store) Verify(ctx context.Context, progress log.Progress) (log.Report, error) {
	var rep log.Report
	release, err := s.holdCompaction(ctx)
	if err != nil {
		return rep, err
	}
	defer release()
	// Segments this Store opened before may have been compacted since:
	// verify each file as it is now, with the offsets file it names.
	for first := range s.segs {
		s.forget(first)
	}
	c, err := s.committed()
	if err != nil {
		return rep, err
	}
	firsts, err := listSegments(s.fsys, s.dir)
	if err != nil {
		return rep, err
	}
	s.firsts = firsts
	var total int64
	for _, first := range firsts {
		if first > c.active {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s lies past the active segment (left by an interrupted roll; the next append removes or adopts it)", segmentName(first)))
			continue
		}
		sf, err := s.segment(first)
		if err != nil {
			return rep, err
		}
		lim, err := s.limit(sf, &c)
		if err != nil {
			return rep, err
		}
		total += lim
	}
	if len(firsts) == 0 || firsts[0] > c.active {
		return rep, &log.CorruptError{File: segmentName(c.active), Offset: -1, Reason: "no segment files"}
	}
	streams := map[string]*streamCheck{}
	expect, base := firsts[0], firsts[0]
	// present marks the positions some segment holds, to tell an event
	// that follows one dropped by compaction from a broken chain.
	present := newBitset(c.next - base)
	var lastTime int64
	var done int64
	for _, first := range firsts {
		if first > c.active {
			break
		}
		name := segmentName(first)
		if first != expect {
			return rep, &log.CorruptError{File: name, Offset: 0, Reason: fmt.Sprintf("starts at position %d, the previous segment ends at %d", first, expect-1)}
		}
		sf, _ := s.segment(first)
		lim, _ := s.limit(sf, &c)
		end := c.next // one past the last position the segment may hold
		if i := slices.Index(firsts, first); i+1 < len(firsts) && firsts[i+1] <= c.active {
			end = firsts[i+1]
		}
		if first == c.active {
			if st, err := sf.f.Stat(); err == nil && st.Size() > c.size {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s has %d uncommitted bytes past the committed end (an interrupted append; the next append recovers or drops them)", name, st.Size()-c.size))
			}
		}
		// Read the offsets file afresh: a cached descriptor may point at a
		// file that repair has since replaced.
		idxName := offsetsNameGen(first, sf.gen)
		var idx []byte
		if sf.gen > 0 {
			sparse := sparseOffsetsName(first, sf.gen)
			if idx, err = vfs.ReadFile(s.fsys, join(s.dir, sparse)); err == nil {
				idxName = sparse
				if idx, err = expandOffsets(idx); err != nil {
					return rep, &log.CorruptError{File: idxName, Offset: -1, Reason: err.Error() + " (run evt repair)"}
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				return rep, err
			}
		}
		if idx == nil {
			idx, err = vfs.ReadFile(s.fsys, join(s.dir, idxName))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return rep, err
			}
		}
		sc := newRecordScanner(sf.f, name, segmentHeaderSize, lim, nil)
		endOfBatch := true
		for sc.Next() {
			rec := sc.Record()
			off := sc.Offset()
			bad := func(format string, a ...any) error {
				return &log.CorruptError{File: name, Offset: off, Reason: fmt.Sprintf(format, a...)}
			}
			if rec.Position < expect || sf.gen == 0 && rec.Position != expect || rec.Position >= end {
				return rep, bad("position %d, expected %d", rec.Position, expect)
			}
			present.set(rec.Position - base)
			if rec.Time < lastTime {
				return rep, bad("time goes back")
			}
			if err := codec.ValidateStream(string(rec.Stream)); err != nil {
				return rep, bad("%v", err)
			}
			st := streams[string(rec.Stream)]
			if st == nil {
				st = &streamCheck{}
				streams[string(rec.Stream)] = st
			}
			// Compaction drops events, never the newest of a stream, so an
			// event may follow a gap in its stream: its prev is then a
			// position no segment holds any more.
			dropped := rec.Prev < rec.Position && rec.Prev >= st.last && (rec.Prev < base || !present.has(rec.Prev-base))
			switch {
			case rec.Marker():
				if rec.Prev != 0 || rec.Version > st.version && !dropped || rec.Flags&codec.FlagTombstone != 0 && rec.Flags&codec.FlagTruncate != 0 {
					return rep, bad("stream %s: marker cuts version %d of %d, prev %d", rec.Stream, rec.Version, st.version, rec.Prev)
				}
				st.cut = cutValue(st.cut, rec.Flags&^codec.FlagEndOfBatch, rec.Version)
			case rec.Version == st.version+1 && rec.Prev == st.last,
				rec.Version > st.version && dropped && (rec.Prev != 0 || rec.Version == 1):
				st.version, st.last = rec.Version, rec.Position
				st.cut &^= cutDeleted
			default:
				return rep, bad("stream %s: version %d after %d, prev %d after %d", rec.Stream, rec.Version, st.version, rec.Prev, st.last)
			}
			i := int(rec.Position-first) * offsetEntrySize
			if i+offsetEntrySize > len(idx) || int64(binary.LittleEndian.Uint64(idx[i:])) != off ||
				int64(binary.LittleEndian.Uint64(idx[i+8:])) != rec.Time {
				return rep, &log.CorruptError{File: idxName, Offset: int64(i), Reason: fmt.Sprintf("entry for position %d is missing or wrong (run evt repair)", rec.Position)}
			}
			lastTime = rec.Time
			endOfBatch = rec.EndOfBatch()
			expect = rec.Position + 1
			if !rec.Marker() {
				rep.Events++
			}
			if rep.Events%16384 == 0 {
				if err := ctx.Err(); err != nil {
					return rep, err
				}
				if progress != nil && rep.Events%65536 == 0 {
					progress(done+off, 2*total) // the log is read twice: see verifyTables
				}
			}
		}
		if err := sc.Err(); err != nil {
			return rep, err
		}
		if !endOfBatch && sf.gen == 0 {
			// (Compaction may drop the end of a batch, never a whole one
			// that was not committed.)
			return rep, &log.CorruptError{File: name, Offset: lim, Reason: "ends inside a batch"}
		}
		if sf.gen > 0 {
			expect = end // the positions compaction dropped
		}
		done += lim
		rep.Bytes += lim
		rep.Segments++
	}
	if expect != c.next {
		return rep, &log.CorruptError{File: commitFile, Offset: -1, Reason: fmt.Sprintf("committed end is position %d, the segments end at %d", c.next-1, expect-1)}
	}
	if progress != nil {
		progress(total, 2*total)
	}
	rep.Streams = len(streams)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if err := s.verifyTables(ctx, &c, streams, progress, total); err != nil {
		return rep, err
	}
	if progress != nil {
		progress(2*total, 2*total)
	}
	return rep, nil
}

// verifyTables checks the heads table and the id index against the log,
// which it reads a second time; progress is told that second pass as the
// second half of 2*size bytes (its share of the positions read).
// Entries the tables have not absorbed yet (past `applied`) are skipped:
// a writer running concurrently, or the next one, adds them.
func (s *Store) verifyTables(ctx context.Context, c *commitState, streams map[string]*streamCheck, progress log.Progress, size int64) error {
	h, err := s.tables()
	if err != nil {
		return err
	}
	applied := h.applied()
	for name, want := range streams {
		var v [headsValues]uint64
		if !h.get(keyOf(name), v[:]) {
			if want.last <= applied {
				return &log.CorruptError{File: headsFile, Offset: -1, Reason: fmt.Sprintf("stream %s is missing (run evt repair)", name)}
			}
			continue
		}
		if v[0] >= c.next {
			continue // moved on by an append after the end this verify read
		}
		if want.last <= applied && (v[0] != want.last || v[1] != want.version || v[2] != want.cut) {
			return &log.CorruptError{File: headsFile, Offset: -1, Reason: fmt.Sprintf("stream %s: table says version %d at %d (cut %#x), the log %d at %d (cut %#x) (run evt repair)", name, v[1], v[0], v[2], want.version, want.last, want.cut)}
		}
	}
	// The count only when the table is exactly at this verify's end: an
	// append since may have added streams. A writer publishes the commit
	// before it puts heads entries, so if the commit has not moved after
	// the count was read, no entry of a later append is in it.
	n := h.count()
	now, err := s.committed()
	if err != nil {
		return err
	}
	if now.next == c.next && h.applied()+1 == c.next && applied+1 == c.next && n != uint64(len(streams)) {
		return &log.CorruptError{File: headsFile, Offset: -1, Reason: fmt.Sprintf("holds %d streams, the log %d (run evt repair)", n, len(streams))}
	}
	ids, err := openHashFile(s.fsys, join(s.dir, idsFile), idsValues, false)
	if err != nil {
		var ce *log.CorruptError
		if errors.As(err, &ce) {
			return err
		}
		return &log.CorruptError{File: idsFile, Offset: -1, Reason: err.Error() + " (run evt repair)"}
	}
	defer ids.close()
	idApplied, idFrom := ids.applied(), ids.idsFrom()
	// Positions before the table's from are in the runs (idindex.go).
	runs, err := s.listRuns()
	if err != nil {
		return err
	}
	defer closeRuns(runs)
	for _, r := range runs {
		if err := verifyIDRun(s.fsys, join(s.dir, r.name)); err != nil {
			return err
		}
	}
	inRuns := func(key hashKey, pos uint64) bool {
		for _, r := range runs {
			if pos >= r.from && pos < r.to && holdsPos(r, key, pos) {
				return true
			}
		}
		return false
	}
	return s.iterate(1, c, func(rec *codec.Record) error {
		if rec.Position > idApplied {
			return errStop
		}
		if rec.Position%16384 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if progress != nil && rec.Position%65536 == 0 {
				progress(size+int64(float64(size)*float64(rec.Position)/float64(c.next)), 2*size)
			}
		}
		if rec.Marker() {
			return nil
		}
		var v [idsValues]uint64
		key := idKey(string(rec.Stream), string(rec.ID))
		if rec.Position < idFrom && !inRuns(key, rec.Position) ||
			rec.Position >= idFrom && (!ids.get(key, v[:]) || v[0] != rec.Position) {
			return &log.CorruptError{File: idsFile, Offset: -1, Reason: fmt.Sprintf("id %s of position %d is missing or wrong (run evt repair)", rec.ID, rec.Position)}
		}
		return nil
	})
}

// bitset is a set of small integers.
type bitset []uint64

func newBitset(n uint64) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) set(i uint64)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i uint64) bool { return i/64 < uint64(len(b)) && b[i/64]&(1<<(i%64)) != 0 }
