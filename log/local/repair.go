package local

import (
	"context"
	"errors"
	"fmt"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/atomicfile"
)

// Repair rebuilds every derived file from the segments, under the append
// lock: the offsets file of each segment, the heads table, the id index
// and the commit file. A torn batch at the end of the log is dropped (it
// was never acknowledged). Damage inside the log — a record that fails
// its checksum with valid records after it, a missing or cut segment —
// cannot be repaired without losing acknowledged events; Repair reports
// it as a *CorruptError and changes nothing.
//
// With dropDamaged, damage in the active segment is cut off instead: the
// events from the damaged record on are dropped, and said so.
func (s *Store) Repair(ctx context.Context, dropDamaged bool, progress log.Progress) (log.Report, error) {
	var rep log.Report
	if s.lock == nil {
		return rep, fmt.Errorf("repair needs a store opened for writing")
	}
	// Not while a compaction swaps files. The waits honour ctx; once both
	// locks are held, repair runs to its end (it is quick next to a
	// restore, and stopping it half way would leave more to repair).
	release, err := s.holdCompaction(ctx)
	if err != nil {
		return rep, err
	}
	defer release()
	if err := s.lock.acquire(ctx, s.opts.LockTimeout); err != nil {
		return rep, err
	}
	defer s.lock.release()

	firsts, err := listSegments(s.fsys, s.dir)
	if err != nil {
		return rep, err
	}
	if len(firsts) == 0 {
		return rep, &log.CorruptError{File: segmentName(1), Offset: -1, Reason: "no segment files"}
	}
	var total, done int64
	for _, first := range firsts {
		if st, err := s.fsys.Stat(join(s.dir, segmentName(first))); err == nil {
			total += st.Size()
		}
	}

	// Pass 1, read only: find where the log really ends. A segment named
	// inside the range the log before it already covers, or past the
	// end with a header that never reached the disk, is an orphan of a
	// writer killed while rolling: not part of the log.
	type segEnd struct {
		first uint64
		gen   uint32
		size  int64
		kept  int64
		next  uint64
		index []byte
	}
	var ends []segEnd
	var orphans []uint64
	expect := firsts[0]
	var lastTime int64
	for i, first := range firsts {
		name := segmentName(first)
		if i > 0 && first < expect {
			orphans = append(orphans, first)
			continue
		}
		if first != expect {
			return rep, &log.CorruptError{File: name, Offset: 0, Reason: fmt.Sprintf("starts at position %d but the log before it ends at %d: events are missing; restore this store from a backup", first, expect-1)}
		}
		sf, err := s.segment(first)
		if err != nil {
			// Only a header that never reached the disk makes the last
			// segment an orphan; a failed open (EIO, no descriptors) is
			// no reason to remove acknowledged events.
			var ce *log.CorruptError
			if i > 0 && i == len(firsts)-1 && errors.As(err, &ce) {
				orphans = append(orphans, first)
				continue
			}
			return rep, err
		}
		st, err := sf.f.Stat()
		if err != nil {
			return rep, err
		}
		size := st.Size()
		sc := newRecordScanner(sf.f, name, segmentHeaderSize, size, nil)
		kept, next := int64(segmentHeaderSize), first
		var entries, pending []byte
		pos := first
		// A compacted segment (generation > 0) holds committed records
		// only, with gaps where compaction dropped some: every record
		// ends a batch there, and a gap gets empty offsets entries.
		end := uint64(0)
		if i+1 < len(firsts) {
			end = firsts[i+1]
		}
		for sc.Next() {
			rec := sc.Record()
			if sf.gen > 0 && rec.Position > pos && (end == 0 || rec.Position < end) {
				for ; pos < rec.Position; pos++ {
					pending = appendOffsetEntry(pending, 0, rec.Time)
				}
			}
			if rec.Position != pos {
				break
			}
			pos++
			pending = appendOffsetEntry(pending, sc.Offset(), rec.Time)
			if progress != nil && pos%65536 == 0 {
				progress(done+sc.Offset(), total) // within a segment too: a store of one segment moves
			}
			if rec.EndOfBatch() || sf.gen > 0 {
				kept, next = sc.off, pos
				entries = append(entries, pending...)
				pending = pending[:0]
				lastTime = rec.Time
			}
		}
		last := i == len(firsts)-1
		if sf.gen > 0 && !last && kept == size {
			for ; next < end; next++ {
				entries = appendOffsetEntry(entries, 0, lastTime)
			}
		}
		if last && !dropDamaged {
			if old, err := readCommit(s.commit); err == nil && old.active == first && kept < old.size {
				return rep, &log.CorruptError{File: name, Offset: kept, Reason: fmt.Sprintf("damaged below the committed end (%d bytes of acknowledged events follow); evt repair --drop-damaged drops them", old.size-kept)}
			}
		}
		if kept < size && !last {
			reason := "a batch is cut short"
			if sc.Err() != nil {
				reason = sc.Err().Error()
			}
			return rep, &log.CorruptError{File: name, Offset: kept, Reason: reason + " inside a sealed segment; the events after it cannot be recovered; restore this store from a backup"}
		}
		ends = append(ends, segEnd{first: first, gen: sf.gen, size: size, kept: kept, next: next, index: entries})
		expect = next
		done += size
		if progress != nil {
			progress(done, total)
		}
	}
	for _, o := range orphans {
		if err := s.fsys.Remove(join(s.dir, segmentName(o))); err != nil {
			return rep, err
		}
		s.fsys.Remove(join(s.dir, offsetsName(o)))
		if sf := s.segs[o]; sf != nil {
			sf.f.Close()
			if sf.idx != nil {
				sf.idx.Close()
			}
			delete(s.segs, o)
		}
		rep.Actions = append(rep.Actions, "removed "+segmentName(o)+", an unfinished segment a writer killed while rolling left")
	}
	s.firsts = nil

	// Pass 2: write. The last segment loses its torn tail, if any.
	li := len(ends) - 1
	active := ends[li].first
	for _, e := range ends {
		first := e.first
		sf, _ := s.segment(first)
		if e.kept < e.size {
			if err := sf.f.Truncate(e.kept); err != nil {
				return rep, err
			}
			rep.Actions = append(rep.Actions, fmt.Sprintf("dropped %d bytes of an unfinished batch at the end of %s", e.size-e.kept, segmentName(first)))
		}
		if e.gen > 0 {
			// The form compaction writes.
			if err := s.writeOffsets(first, e.gen, e.index); err != nil {
				return rep, err
			}
		} else if err := atomicfile.WriteFS(s.fsys, join(s.dir, offsetsNameGen(first, e.gen)), e.index, 0o600); err != nil {
			return rep, err
		}
		if sf.idx != nil {
			sf.idx.Close()
			sf.idx = nil
		}
		if err := s.ensureIdx(sf); err != nil {
			return rep, err
		}
		if err := sf.f.Sync(); err != nil {
			return rep, err
		}
		rep.Segments++
		rep.Bytes += e.kept
	}
	rep.Actions = append(rep.Actions, fmt.Sprintf("rebuilt the offsets of %d segments", len(ends)))
	old, _ := readCommit(s.commit)
	c := commitState{seq: old.seq + 1, next: expect, active: active, size: ends[li].kept, lastTime: lastTime, lastSync: lastTime, boot: s.boot}
	if err := s.rebuildTables(&c); err != nil {
		return rep, err
	}
	rep.Actions = append(rep.Actions, "rebuilt the heads table and the id index")
	if err := writeCommit(s.commit, &c); err != nil {
		return rep, err
	}
	if err := s.commit.Sync(); err != nil {
		return rep, err
	}
	rep.Events = expect - firsts[0]
	rep.Streams = int(s.heads.count())
	return rep, nil
}
