package local

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// Compaction reclaims the space of the events the limits removed (see
// view). It only ever touches sealed segments, which no writer changes,
// so appends go on meanwhile; it takes the append lock only for a moment
// at the start, to bring the tables up to the committed end.
//
// Each sealed segment with removed events is either
//   - deleted, when it is the oldest segment and nothing in it is kept:
//     the log then starts at the next segment; or
//   - rewritten into a new file of the next generation, swapped in with
//     one rename. Positions, versions, ids and times of the surviving
//     records do not change; the offsets file of the new generation
//     (NAME.GEN.idx) is written before the swap, with empty entries for
//     the dropped positions, so the segment file always names a complete
//     offsets file of its own.
//
// A reader that opened the old file keeps reading it (a rename or unlink
// leaves an open file intact); a reader that opens the segment afterwards
// sees the new one. A crash at any point leaves either file whole; the
// next compaction removes the leftovers (NAME.seg.compact, offsets files
// of other generations).
//
// Compaction keeps, though no read shows them, the newest record of every
// stream and the marker that set each stream's cut: a rebuild of the
// tables from the segments then still finds every stream's version, so a
// deleted stream's versions are never given again.

const compactLockFile = "compact.lock"

// holdCompaction takes the compaction lock, waiting for it until ctx is
// done, for work that must not see a compaction's files half swapped:
// verify (a segment whose old offsets file is gone under it would look
// damaged), repair, the hash chain. Appends never take it. A reader that
// cannot create the lock file (a read-only store) goes on without it.
func (s *Store) holdCompaction(ctx context.Context) (release func(), err error) {
	cl, err := openNamedLock(s.fsys, join(s.dir, compactLockFile), "compaction lock (held by evt compact)")
	if err != nil {
		return func() {}, nil
	}
	cl.noPID = true
	const forever = 1<<63 - 1
	if err := cl.acquire(ctx, forever); err != nil {
		if ctx.Err() != nil {
			// The file stays open: a flock given up on may still be
			// taken, and released, through its descriptor.
			return nil, err
		}
		cl.close()
		return func() {}, nil
	}
	return func() {
		cl.release()
		cl.close()
	}, nil
}

// Compact reclaims the space of removed events. Only one compaction runs
// at a time, and none while verify or repair runs: it waits for them up to
// the lock timeout, or until ctx is done. A ctx done later stops it before
// the next segment, or before a segment's new file is swapped in: every
// segment is then either compacted or as it was, and the hash chain
// covers what changed.
func (s *Store) Compact(ctx context.Context, progress log.Progress) (log.CompactReport, error) {
	var rep log.CompactReport
	if s.lock == nil {
		return rep, errors.New("compaction needs a store opened for writing")
	}
	// One compaction at a time, and not while verify or repair read the
	// segments: wait for them, at most the lock timeout.
	cl, err := openNamedLock(s.fsys, join(s.dir, compactLockFile), "compaction lock (another evt compact, verify or repair)")
	if err != nil {
		return rep, err
	}
	defer cl.close()
	if err := cl.acquire(ctx, s.opts.LockTimeout); err != nil {
		return rep, err
	}
	defer cl.release()

	// The tables must be up to the committed end: they say which record
	// is each stream's newest.
	if err := s.lock.acquire(ctx, s.opts.LockTimeout); err != nil {
		return rep, err
	}
	c, err := s.prepare()
	s.lock.release()
	if err != nil {
		return rep, err
	}
	shrinkKilled := s.hasRunLeftovers()
	if err := s.removeLeftovers(); err != nil {
		return rep, err
	}
	if err := s.rechain(); err != nil { // a compaction killed before it rechained
		return rep, err
	}
	v, err := s.view(&c)
	if err != nil {
		return rep, err
	}
	h, err := s.tables()
	if err != nil {
		return rep, err
	}
	// The active segment is compacted too, once sealed: seal it when
	// enough of it is removed (one big batch that was deleted is one
	// segment, and stays the active one until the next append).
	if sealed, err := s.sealRemoved(ctx, &c, v, h); err != nil {
		return rep, err
	} else if sealed {
		if v, err = s.view(&c); err != nil {
			return rep, err
		}
		if h, err = s.tables(); err != nil {
			return rep, err
		}
	}
	s.firsts = nil
	firsts, err := s.segmentList(&c)
	if err != nil {
		return rep, err
	}
	sealed := firsts[:len(firsts)-1]
	// What the groups never got to is counted before it leaves the disk.
	if err := s.noteExpired(v, &c, firsts[len(firsts)-1]); err != nil {
		return rep, err
	}
	// What an archive rule removes is in its archive before any of it
	// leaves the disk (archive.go).
	if err := s.archiveRemoved(ctx, &c, v, h, sealed); err != nil {
		return rep, err
	}
	var total, done int64
	sizes := make([]int64, len(sealed))
	for i, first := range sealed {
		st, err := s.fsys.Stat(join(s.dir, segmentName(first)))
		if err != nil {
			return rep, err
		}
		sizes[i] = st.Size()
		total += st.Size()
	}
	rep.BytesBefore = total
	prefix := true // every segment before this one was deleted
	for i, first := range sealed {
		if err := ctx.Err(); err != nil {
			return rep, s.stopCompaction(err)
		}
		rep.Segments++
		if v.plain && !(prefix && sizes[i] <= segmentHeaderSize) {
			// No limit applies (no rule, no truncate or delete ever, no
			// max-bytes): every record stays, so the segment is not read.
			// Only one an earlier compaction emptied goes, once it is the
			// oldest. A compaction with nothing to do then costs a stat
			// per segment, not a read of the log.
			rep.BytesAfter += sizes[i]
			prefix = false
			done += sizes[i]
			if progress != nil {
				progress(done, total)
			}
			continue
		}
		end := firsts[i+1]
		kept, err := s.compactSegment(ctx, first, end, &c, v, h, prefix, &rep)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return rep, s.stopCompaction(err)
			}
			return rep, err
		}
		rep.BytesAfter += kept
		prefix = prefix && kept == 0 // removed: the next one may be the oldest
		done += sizes[i]
		if progress != nil {
			progress(done, total)
		}
	}
	if err := s.rechain(); err != nil {
		return rep, err
	}
	if rep.Dropped > 0 || shrinkKilled {
		if err := s.shrinkIDs(ctx); err != nil {
			return rep, err
		}
	}
	n, err := s.removeStaleSnapshots(h)
	rep.Snapshots = n
	return rep, err
}

// sealRemoved seals the active segment, as an append that fills it
// would, when at least half of its bytes are records compaction would
// drop, or when it is larger than a segment (a batch bigger than one) and
// holds any: compaction then treats it as the sealed segment it is. Less
// is left for later, so that compacting a store whose newest events
// expire one by one does not cut it into tiny segments. It reports
// whether it sealed, and c is then the state it published.
func (s *Store) sealRemoved(ctx context.Context, c *commitState, v *view, h *hashFile) (bool, error) {
	sf, err := s.segment(c.active)
	if err != nil {
		return false, err
	}
	var dropped int64
	sc := newRecordScanner(sf.f, segmentName(sf.first), segmentHeaderSize, c.size, s.scanBuf)
	for sc.Next() {
		if rec := sc.Record(); !s.keeps(rec, v, h) {
			dropped += int64(rec.Size)
		}
	}
	if sc.Err() != nil {
		return false, sc.Err()
	}
	s.scanBuf = sc.buf
	size := c.size - segmentHeaderSize
	if dropped == 0 || 2*dropped < size && c.size <= s.opts.SegmentSize {
		return false, nil
	}
	if err := s.lock.acquire(ctx, s.opts.LockTimeout); err != nil {
		return false, err
	}
	defer s.lock.release()
	now, err := s.prepare()
	if err != nil {
		return false, err
	}
	if now.active != c.active {
		*c = now // an append sealed it meanwhile
		return true, nil
	}
	t := time.Now().UnixNano()
	if err := s.roll(&now, max(t, now.lastTime)); err != nil {
		return false, err
	}
	now.seq++
	if err := writeCommit(s.commit, &now); err != nil {
		s.failed = err
		return false, fmt.Errorf("publish commit: %w", err)
	}
	*c = now
	return true, nil
}

// shrinkIDs drops from the id index the ids of events the segments no
// longer hold. It finds which positions still hold an event, without the
// append lock; then, under it, moves a table that still holds more than a
// run's worth (one written before id runs) into a run; then rewrites each
// run that lost an eighth or more of its events without them, off the
// lock, and swaps each in under it (swapRuns). A ctx done first leaves
// the index as it was; a run rewritten meanwhile by a seal is left for
// the next compaction.
func (s *Store) shrinkIDs(ctx context.Context) error {
	c, err := s.committed()
	if err != nil {
		return err
	}
	held := newBitset(c.next)
	n := 0
	err = s.iterate(1, &c, func(rec *codec.Record) error {
		if n++; n%16384 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !rec.Marker() {
			held.set(rec.Position)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.lock.acquire(ctx, s.opts.LockTimeout); err != nil {
		return err
	}
	now, err := s.prepare()
	if err == nil && s.ids.count() > idRunBase {
		err = s.flushIDs(now.next)
		s.mergeDue = false // compaction holds the lock merges need
	}
	s.lock.release()
	if err != nil {
		return err
	}
	runs, err := s.listRuns()
	if err != nil {
		return err
	}
	defer closeRuns(runs)
	keep := func(p uint64) bool { return p >= c.next || held.has(p) }
	for _, r := range runs {
		dropped := 0
		for _, e := range r.entries {
			if !keep(r.from + e&0xffffffff) {
				dropped++
			}
		}
		if dropped == 0 || 8*dropped < len(r.entries) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		out := join(s.dir, r.name+".compact")
		if err := mergeIDRuns(s.fsys, s.dir, out, []*idRun{r}, keep); err != nil {
			s.fsys.Remove(out)
			return err
		}
		if err := s.swapRuns(ctx, out, []*idRun{r}); err != nil {
			return err
		}
	}
	return nil
}

// stopCompaction ends a compaction that ctx stopped between segments:
// the chain is brought up to the segments rewritten so far, as a
// compaction that ran to its end would have.
func (s *Store) stopCompaction(err error) error {
	if cerr := s.rechain(); cerr != nil {
		return cerr
	}
	return err
}

// compactSegment compacts one sealed segment and returns its size after
// (0 if it was deleted). A ctx done before its new file is swapped in
// leaves the segment as it was.
func (s *Store) compactSegment(ctx context.Context, first, end uint64, c *commitState, v *view, h *hashFile, prefix bool, rep *log.CompactReport) (int64, error) {
	sf, err := s.segment(first)
	if err != nil {
		return 0, err
	}
	lim, err := s.limit(sf, c)
	if err != nil {
		return 0, err
	}
	name := segmentName(first)
	// One scan decides every record and lays out the new file: the
	// offsets entries (with the new offsets of kept records, an empty
	// entry with a time no later than theirs for dropped positions, so
	// time search still works) and the byte ranges to copy.
	drop, keep := 0, 0
	idx := make([]byte, 0, int(end-first)*offsetEntrySize)
	var runs []byteRange // kept records, adjacent ones merged
	size := int64(segmentHeaderSize)
	pos := first
	sc := newRecordScanner(sf.f, name, segmentHeaderSize, lim, s.scanBuf)
	for sc.Next() {
		rec := sc.Record()
		for ; pos < rec.Position; pos++ { // dropped by an earlier compaction
			idx = appendOffsetEntry(idx, 0, rec.Time)
		}
		pos++
		if !s.keeps(rec, v, h) {
			drop++
			idx = appendOffsetEntry(idx, 0, rec.Time)
			continue
		}
		keep++
		idx = appendOffsetEntry(idx, size, rec.Time)
		off, n := sc.Offset(), int64(rec.Size)
		if k := len(runs) - 1; k >= 0 && runs[k].end == off {
			runs[k].end += n
		} else {
			runs = append(runs, byteRange{off, off + n})
		}
		size += n
	}
	if sc.Err() != nil {
		return 0, sc.Err()
	}
	s.scanBuf = sc.buf
	if keep == 0 && prefix && drop == 0 {
		// Emptied by an earlier compaction while an older segment still
		// kept a record; now the oldest: it goes.
		return 0, s.removeSegment(sf, rep)
	}
	if drop == 0 {
		return lim, nil
	}
	rep.Dropped += uint64(drop)
	if keep == 0 && prefix {
		return 0, s.removeSegment(sf, rep)
	}
	var lastTime int64
	if len(idx) >= offsetEntrySize {
		lastTime = int64(binary.LittleEndian.Uint64(idx[len(idx)-8:]))
	}
	for ; pos < end; pos++ {
		idx = appendOffsetEntry(idx, 0, lastTime)
	}

	// Write the next generation: the header, then the kept byte ranges
	// (records are kept byte for byte, and were checked by the scan).
	gen := sf.gen + 1
	tmpPath := join(s.dir, segmentName(first)+".compact")
	out, err := s.fsys.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", name, err)
	}
	defer func() {
		out.Close()
		s.fsys.Remove(tmpPath)
	}()
	var old [segmentHeaderSize]byte
	if _, err := sf.f.ReadAt(old[:], 0); err != nil {
		return 0, err
	}
	created := int64(binary.LittleEndian.Uint64(old[24:]))
	origSize := lim
	if sf.gen > 0 {
		origSize = int64(binary.LittleEndian.Uint64(old[40:]))
	}
	if _, err := out.Write(encodeSegmentHeaderGen(first, created, gen, origSize)); err != nil {
		return 0, fmt.Errorf("compact %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := copyRuns(out, sf.f, runs); err != nil {
		return 0, fmt.Errorf("compact %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := out.Sync(); err != nil {
		return 0, fmt.Errorf("compact %s: %w", name, err)
	}
	// The new generation's offsets file exists, complete and synced,
	// before the segment that names it.
	if err := s.writeOffsets(first, gen, idx); err != nil {
		return 0, fmt.Errorf("compact %s: %w", name, err)
	}
	if err := s.fsys.SyncDir(s.dir); err != nil {
		return 0, err
	}
	s.forget(first)
	if err := s.fsys.Rename(tmpPath, join(s.dir, segmentName(first))); err != nil {
		return 0, fmt.Errorf("compact %s: %w", name, err)
	}
	if err := s.fsys.SyncDir(s.dir); err != nil {
		return 0, err
	}
	s.fsys.Remove(join(s.dir, offsetsNameGen(first, sf.gen)))
	s.fsys.Remove(join(s.dir, sparseOffsetsName(first, sf.gen)))
	rep.Rewritten++
	return size, nil
}

// removeSegment deletes the oldest segment, which keeps nothing.
func (s *Store) removeSegment(sf *segFile, rep *log.CompactReport) error {
	first, idx := sf.first, sf.idxName()
	s.forget(first)
	// The segment first: a reader that fails to open it then finds the
	// log starts later (removedSegment).
	if err := s.fsys.Remove(join(s.dir, segmentName(first))); err != nil {
		return err
	}
	s.fsys.Remove(join(s.dir, idx))
	s.fsys.Remove(join(s.dir, sparseOffsetsName(first, sf.gen)))
	s.fsys.Remove(join(s.dir, offsetsNameGen(first, sf.gen)))
	if err := s.fsys.SyncDir(s.dir); err != nil {
		return err
	}
	rep.Removed++
	return nil
}

// keeps reports whether compaction keeps a record: an event the limits
// keep, a stream's newest record, or the marker that set its cut.
func (s *Store) keeps(rec *codec.Record, v *view, h *hashFile) bool {
	if v.visible(rec) {
		return true
	}
	var vals [headsValues]uint64
	if !h.get(keyOf(string(rec.Stream)), vals[:]) {
		return false // not in the table: no stream has it as its head
	}
	if rec.Marker() {
		cut, _ := splitCut(vals[2])
		return rec.Version == cut
	}
	return vals[0] == rec.Position
}

// forget closes this Store's descriptors of a segment about to change.
func (s *Store) forget(first uint64) {
	if sf := s.segs[first]; sf != nil {
		sf.f.Close()
		if sf.idx != nil {
			sf.idx.Close()
		}
		delete(s.segs, first)
	}
	for i, f := range s.lru {
		if f == first {
			s.lru = append(s.lru[:i], s.lru[i+1:]...)
			break
		}
	}
	s.firsts = nil
}

// removeLeftovers deletes what a killed compaction left: unfinished
// segment copies, and offsets files of generations no segment has.
func (s *Store) removeLeftovers() error {
	ents, err := s.fsys.ReadDir(s.dir)
	if err != nil {
		return err
	}
	gens := map[uint64]uint32{}
	unread := map[uint64]bool{} // segments whose header could not be read: their offsets files stay
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".seg") && len(name) == 24 {
			first, err := strconv.ParseUint(name[:20], 10, 64)
			if err != nil {
				continue
			}
			if gen, err := segmentGen(s.fsys, join(s.dir, name), first); err == nil {
				gens[first] = gen
			} else {
				unread[first] = true
			}
		}
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".seg.compact"), strings.HasSuffix(name, ".idx.tmp"), strings.HasSuffix(name, ".sidx.tmp"),
			name == idsFile+".compact", name == idsFile+".compact.grow", // shrinkIDs before id runs
			strings.HasSuffix(name, ".ids.compact"), strings.HasSuffix(name, ".ids.merge"), // shrinkIDs, mergeOnce
			strings.HasSuffix(name, ".ids.compact.tmp"), strings.HasSuffix(name, ".ids.merge.tmp"):
			s.fsys.Remove(join(s.dir, name))
		case (strings.HasSuffix(name, ".idx") || strings.HasSuffix(name, ".sidx")) && len(name) >= 24:
			// NAME.idx (generation 0), NAME.GEN.idx or NAME.GEN.sidx.
			first, err := strconv.ParseUint(name[:20], 10, 64)
			if err != nil {
				continue
			}
			gen := uint64(0)
			if mid := strings.TrimSuffix(strings.TrimSuffix(name[20:], ".idx"), ".sidx"); mid != "" {
				if gen, err = strconv.ParseUint(strings.TrimPrefix(mid, "."), 10, 32); err != nil {
					continue
				}
			}
			if unread[first] {
				continue
			}
			if cur, ok := gens[first]; !ok && first < s.oldestSegment(gens) || ok && uint64(cur) != gen {
				s.fsys.Remove(join(s.dir, name))
			}
		}
	}
	return nil
}

// oldestSegment is the smallest first position among gens.
func (s *Store) oldestSegment(gens map[uint64]uint32) uint64 {
	oldest := ^uint64(0)
	for f := range gens {
		oldest = min(oldest, f)
	}
	return oldest
}

// removeStaleSnapshots deletes fold snapshots of streams cut since they
// were taken: they hold state folded from events that are gone.
func (s *Store) removeStaleSnapshots(h *hashFile) (int, error) {
	dir := join(s.dir, snapshotDir)
	ents, err := s.fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		b, err := vfs.ReadFile(s.fsys, join(dir, e.Name()))
		if err != nil {
			continue
		}
		f, ok := decodeSnapshot(b)
		if !ok {
			continue
		}
		fp, stream := f.fingerprint, f.stream
		var vals [headsValues]uint64
		if !h.get(keyOf(stream), vals[:]) {
			continue
		}
		if cut, _ := splitCut(vals[2]); cut > 0 && !strings.HasSuffix(fp, cutSuffix(cut)) {
			if s.fsys.Remove(join(dir, e.Name())) == nil {
				n++
			}
		}
	}
	return n, nil
}

// byteRange is the bytes [off, end) of a file.
type byteRange struct{ off, end int64 }

// copyRuns appends the byte ranges runs of src to dst, in order. Small
// ranges (kept records between dropped ones) are copied through one
// window of src read in large preads; a long range is copied by the
// kernel.
func copyRuns(dst, src vfs.File, runs []byteRange) error {
	const window = 1 << 20
	w := bufio.NewWriterSize(dst, window)
	buf := make([]byte, window)
	var bufOff, bufEnd int64 // src bytes [bufOff, bufEnd) are in buf
	for _, r := range runs {
		if r.end-r.off >= window {
			if err := w.Flush(); err != nil {
				return err
			}
			if err := copyRange(dst, src, r); err != nil {
				return err
			}
			continue
		}
		for off := r.off; off < r.end; {
			if off < bufOff || off >= bufEnd {
				n, err := src.ReadAt(buf, off)
				if n == 0 {
					if err == nil || errors.Is(err, io.EOF) {
						err = io.ErrUnexpectedEOF
					}
					return err
				}
				bufOff, bufEnd = off, off+int64(n)
			}
			m := min(r.end, bufEnd) - off
			if _, err := w.Write(buf[off-bufOff : off-bufOff+m]); err != nil {
				return err
			}
			off += m
		}
	}
	return w.Flush()
}

// copyRange appends the bytes r of src to dst: copy_file_range, which
// copies inside the kernel (or shares blocks), falling back to read and
// write where the file system cannot.
func copyRange(dst, src vfs.File, r byteRange) error {
	off := r.off
	for off < r.end {
		n, err := unix.CopyFileRange(int(src.Fd()), &off, int(dst.Fd()), nil, int(r.end-off), 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			_, err := io.Copy(dst, io.NewSectionReader(src, off, r.end-off))
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
	}
	return nil
}
