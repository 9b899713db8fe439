package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// Recovery. A writer runs prepare under the append lock before every
// append, so the store is always consistent when it adds to it:
//
//  1. Read the commit file: the committed end (next position, active
//     segment, its committed size).
//  2. If the active segment is longer than its committed size, a writer
//     died mid-append (or a power loss dropped the last publish, whose
//     data was synced). Scan forward from the committed size: accept each
//     complete batch (valid records, positions continuing the log, the
//     last one flagged end-of-batch), drop the rest by truncating the file
//     and its offsets file, and publish the new end.
//  3. If the kernel boot id differs from the one in the commit file, the
//     machine restarted and unsynced pages of any file may be gone. Rescan
//     the active segment from its header (sealed segments and their
//     derived files were synced when sealed), follow into a segment that a
//     lost publish had rolled to, rewrite the offsets of every record
//     found, and rebuild the heads and id tables from the log if they
//     reference positions past the recovered end.
//  4. Bring the heads table and the id index up to the committed end by
//     applying the records after their `applied` mark (a writer that died
//     between publishing and updating them leaves that gap). Missing or
//     corrupt tables are rebuilt from the segments.

// prepare returns the committed state with the store made consistent. The
// caller holds the append lock.
func (s *Store) prepare() (commitState, error) {
	c, err := readCommit(s.commit)
	if err != nil {
		return c, fmt.Errorf("%w (run evt repair)", err)
	}
	orig := c
	sf, err := s.segment(c.active)
	if err != nil {
		return c, err
	}
	st, err := sf.f.Stat()
	if err != nil {
		return c, err
	}
	if st.Size() < c.size {
		return c, &log.CorruptError{File: segmentName(c.active), Offset: st.Size(), Reason: fmt.Sprintf("%d bytes shorter than its committed end; evt repair --drop-damaged drops the events past the damage", c.size-st.Size())}
	}
	// A rescan from the active segment's start ("rebooted") is needed
	// after a reboot, and also whenever the commit file looks older than
	// the store: a segment exists past the active one (a publish that
	// rolled was lost), or the tables have absorbed positions past the
	// committed end.
	rebooted := c.boot != s.boot ||
		(s.heads != nil && s.heads.applied() >= c.next) ||
		(s.ids != nil && s.ids.applied() >= c.next) ||
		s.exists(join(s.dir, segmentName(c.next))) && c.next != c.active
	if rebooted {
		if err := s.recoverTail(&c, sf, segmentHeaderSize, c.active, st.Size(), true); err != nil {
			return c, err
		}
	} else if st.Size() != c.size {
		if err := s.recoverTail(&c, sf, c.size, c.next, st.Size(), false); err != nil {
			return c, err
		}
	}
	lost := c.next < orig.next
	// Publish the recovered end before the tables absorb it: tables never
	// run ahead of the commit file (readers and verify rely on that). The
	// boot id is renewed only once the tables are caught up, so a crash in
	// between makes the next writer take the thorough path again.
	if c != orig {
		c.seq++
		if err := writeCommit(s.commit, &c); err != nil {
			return c, err
		}
	}
	if err := s.catchUp(&c, rebooted, lost); err != nil {
		return c, err
	}
	if err := s.checkActiveIdx(&c); err != nil {
		return c, err
	}
	if rebooted {
		c.boot = s.boot
		c.seq++
		if err := writeCommit(s.commit, &c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// recoverTail scans sf from offset from (where position expect must
// start) to size, keeps every complete batch, truncates what follows and
// rewrites the offsets of the records kept. With follow it continues into
// the next segment if one was rolled to by a publish that was lost.
func (s *Store) recoverTail(c *commitState, sf *segFile, from int64, expect uint64, size int64, follow bool) error {
	for {
		name := segmentName(sf.first)
		sc := newRecordScanner(sf.f, name, from, size, nil)
		kept, next, lastTime := from, expect, c.lastTime
		pos := expect
		var entries, pending []byte
		for sc.Next() {
			rec := sc.Record()
			if rec.Position != pos {
				break
			}
			pos++
			pending = appendOffsetEntry(pending, sc.Offset(), rec.Time)
			if rec.EndOfBatch() {
				kept, next, lastTime = sc.off, pos, rec.Time
				entries = append(entries, pending...)
				pending = pending[:0]
			}
		}
		if follow && sf.first == c.active && kept < c.size {
			// Below the committed end: lost pages (sync none) look the same
			// as damage. Either way acknowledged events would go: ask.
			return &log.CorruptError{File: name, Offset: kept, Reason: fmt.Sprintf("after a restart, %d bytes below the committed end are unreadable; run evt repair --drop-damaged to drop them", c.size-kept)}
		}
		if err := s.ensureIdx(sf); err != nil {
			return err
		}
		if len(entries) > 0 {
			if _, err := sf.idx.WriteAt(entries, int64(expect-sf.first)*offsetEntrySize); err != nil {
				return err
			}
		}
		if err := sf.idx.Truncate(int64(next-sf.first) * offsetEntrySize); err != nil {
			return err
		}
		if kept < size {
			if err := sf.f.Truncate(kept); err != nil {
				return fmt.Errorf("recover %s: %w", name, err)
			}
		}
		c.size, c.next, c.lastTime = kept, next, lastTime
		if !follow || c.next == c.active {
			return nil
		}
		// Did a lost publish roll to a new segment?
		nf, err := s.fsys.OpenFile(join(s.dir, segmentName(c.next)), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		nf.Close()
		if err := sf.f.Sync(); err != nil {
			return err
		}
		nsf, err := s.segment(c.next)
		if err != nil {
			// A header that never reached the disk: the roll did not happen.
			s.fsys.Remove(join(s.dir, segmentName(c.next)))
			s.fsys.Remove(join(s.dir, offsetsName(c.next)))
			return nil
		}
		st, err := nsf.f.Stat()
		if err != nil {
			return err
		}
		c.active, c.size = c.next, segmentHeaderSize
		s.firsts = nil
		sf, from, expect, size = nsf, segmentHeaderSize, c.next, st.Size()
	}
}

// checkActiveIdx rebuilds the active segment's offsets file when it holds
// fewer entries than the segment has committed records (deleted, or cut
// by a crash of the machine): a derived file is rebuilt, not trusted.
func (s *Store) checkActiveIdx(c *commitState) error {
	sf, err := s.segment(c.active)
	if err != nil {
		return err
	}
	want := int64(c.next-c.active) * offsetEntrySize
	if sf.idx != nil {
		if st, err := sf.idx.Stat(); err == nil && st.Size() >= want {
			return nil
		}
	}
	if err := s.ensureIdx(sf); err != nil {
		return err
	}
	sc := newRecordScanner(sf.f, segmentName(sf.first), segmentHeaderSize, c.size, nil)
	entries := make([]byte, 0, want)
	for sc.Next() {
		entries = appendOffsetEntry(entries, sc.Offset(), sc.Record().Time)
	}
	if sc.Err() != nil {
		return sc.Err()
	}
	if _, err := sf.idx.WriteAt(entries, 0); err != nil {
		return err
	}
	return sf.idx.Truncate(int64(len(entries)))
}

func appendOffsetEntry(b []byte, off int64, t int64) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(off))
	return binary.LittleEndian.AppendUint64(b, uint64(t))
}

// ensureIdx opens or creates the offsets file of a segment for writing.
func (s *Store) ensureIdx(sf *segFile) error {
	if sf.idx != nil {
		return nil
	}
	if err := s.openIdx(sf, os.O_RDWR); err != nil || sf.idx != nil {
		return err
	}
	f, err := s.fsys.OpenFile(join(s.dir, sf.idxName()), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	sf.idx = f
	return nil
}

// catchUp brings the heads table and id index up to c.next.
func (s *Store) catchUp(c *commitState, rebooted, lost bool) error {
	if s.heads != nil && s.heads.moved() {
		s.heads.close()
		s.heads = nil
		if err := s.openHeads(true); err != nil {
			return err
		}
	}
	if s.ids != nil && s.ids.moved() {
		s.ids.close()
		s.ids = nil
		ids, err := openHashFile(s.fsys, join(s.dir, idsFile), idsValues, true)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, log.ErrCorrupt) {
			return err
		}
		s.ids = ids
	}
	rebuild := s.heads == nil || s.ids == nil || lost
	if !rebuild && rebooted {
		// Pages of the tables may have reached the disk without the log
		// records they describe (sync none or interval).
		rebuild = s.heads.applied() >= c.next || s.ids.applied() >= c.next || beyond(s.heads, 0, c.next) || beyond(s.ids, 0, c.next)
	}
	if rebuild {
		return s.rebuildTables(c)
	}
	from := min(s.heads.applied(), s.ids.applied()) + 1
	if rebooted {
		from = min(from, c.active)
	}
	if from >= c.next {
		return nil
	}
	if err := s.reserveTables(c.next-from, c.next-from); err != nil {
		return err
	}
	err := s.iterate(from, c, func(rec *codec.Record) error {
		applyHeads(s.heads, rec)
		applyID(s.ids, rec)
		if rebooted {
			return s.noteCreated(rec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A writer died between publishing and setting applied, maybe inside
	// a put that made a slot visible and did not count it.
	s.heads.recount()
	s.ids.recount()
	s.heads.setApplied(c.next - 1)
	s.ids.setApplied(c.next - 1)
	if rebooted {
		h, err := s.heads.rewriteAfterRestart()
		if err != nil {
			return err
		}
		s.heads = h
		if err := s.heads.sync(); err != nil {
			return err
		}
		return s.ids.sync()
	}
	return nil
}

// beyond reports whether any entry's value i is a position at or past next.
func beyond(h *hashFile, i int, next uint64) bool {
	found := false
	h.each(func(_ hashKey, vals []uint64) bool {
		found = vals[i] >= next
		return !found
	})
	return found
}

// reserveTables makes room for streams new heads and ids new ids.
func (s *Store) reserveTables(streams, ids uint64) error {
	h, err := s.heads.reserve(streams)
	if err != nil {
		return err
	}
	s.heads = h
	idx, err := s.ids.reserve(ids)
	if err != nil {
		return err
	}
	s.ids = idx
	return nil
}

// applyHeads records rec as the head of its stream. Applying the same
// records again gives the same table, so recovery may overlap.
func applyHeads(h *hashFile, rec *codec.Record) {
	key := keyOf(string(rec.Stream))
	var vals [headsValues]uint64
	found := h.get(key, vals[:])
	if rec.Marker() {
		if !found {
			return // a marker follows an event of its stream; never alone
		}
		vals[2] = cutValue(vals[2], rec.Flags&^codec.FlagEndOfBatch, rec.Version)
		h.setCuts()
	} else {
		vals[0], vals[1] = rec.Position, rec.Version
		vals[2] &^= cutDeleted
	}
	h.put(key, vals[:])
}

// applyID records rec's id; the first event with an id in a stream wins.
func applyID(h *hashFile, rec *codec.Record) {
	if rec.Marker() {
		return // markers are never looked up by id
	}
	key := idKey(string(rec.Stream), string(rec.ID))
	var vals [idsValues]uint64
	// Position 0 is no event: a slot whose key reached the disk without
	// its value (the two on pages written back at different times).
	if h.get(key, vals[:]) && vals[0] != 0 && vals[0] <= rec.Position {
		return
	}
	h.put(key, []uint64{rec.Position})
}

// rebuildTables recreates the heads table and id index from every
// committed record.
func (s *Store) rebuildTables(c *commitState) error {
	n := c.next - 1
	heads, err := createHashFile(s.fsys, join(s.dir, headsFile+".tmp"), headsValues, 0)
	if err != nil {
		return err
	}
	ids, err := createHashFile(s.fsys, join(s.dir, idsFile+".tmp"), idsValues, n)
	if err != nil {
		heads.close()
		return err
	}
	err = s.iterate(1, c, func(rec *codec.Record) error {
		var err error
		if heads, err = heads.reserve(1); err != nil {
			return err
		}
		if ids, err = ids.reserve(1); err != nil {
			return err
		}
		applyHeads(heads, rec)
		applyID(ids, rec)
		return nil
	})
	if err == nil {
		heads.setApplied(n)
		ids.setApplied(n)
		err = heads.sync()
	}
	if err == nil {
		err = ids.sync()
	}
	if err == nil {
		err = s.fsys.Rename(heads.path, join(s.dir, headsFile))
		heads.path = join(s.dir, headsFile)
	}
	if err == nil {
		err = s.fsys.Rename(ids.path, join(s.dir, idsFile))
		ids.path = join(s.dir, idsFile)
	}
	if err != nil {
		heads.close()
		ids.close()
		s.fsys.Remove(join(s.dir, headsFile+".tmp"))
		s.fsys.Remove(join(s.dir, idsFile+".tmp"))
		return fmt.Errorf("rebuild tables: %w", err)
	}
	if s.heads != nil {
		s.heads.store(48, 1)
		s.heads.close()
	}
	if s.ids != nil {
		s.ids.store(48, 1)
		s.ids.close()
	}
	s.heads, s.ids = heads, ids
	// The table holds every id now; only then may the runs go.
	if err := s.removeRuns(); err != nil {
		return err
	}
	if err := s.rebuildNames(c); err != nil {
		return err
	}
	return s.fsys.SyncDir(s.dir)
}

// recoverAsReader runs recovery for a process that opened the store to
// read, after a reboot: it takes the append lock once, if it can.
func (s *Store) recoverAsReader() error {
	w, err := Open(s.dir, Options{Create: true, LockTimeout: s.opts.LockTimeout, Sync: SyncAlways})
	if err != nil {
		return fmt.Errorf("store needs recovery after a restart, which needs write access: %w", err)
	}
	defer w.Close()
	if err := w.lock.acquire(context.Background(), w.opts.LockTimeout); err != nil {
		return err
	}
	defer w.lock.release()
	_, err = w.prepare()
	return err
}
