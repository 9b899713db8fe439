package local

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/evtdev/evt/log/atomicfile"
)

// A compacted segment (generation >= 1) may hold few of its positions,
// and a dense offsets file would keep 16 bytes for each position it
// dropped (1.6 MB for one event left of 100,000). Compaction therefore
// writes the smaller of two forms of its offsets file:
//
//   - dense, NAME.GEN.idx, as for generation 0: one 16-byte entry (offset, time) per
//     position, offset 0 for a dropped one (what every compaction wrote
//     before the sparse form existed, so older stores still read);
//   - sparse, NAME.GEN.sidx: a 16-byte header (magic "EVTKEEP\x01", the number of
//     positions the segment covers u64), then 24-byte entries (position,
//     offset, time) in position order: one per kept record, and one with
//     offset 0 at the start of each run of dropped positions, carrying
//     the time of the run's first record. A position's entry is the last
//     entry at or before it (a binary search with a few 24-byte preads);
//     a dropped position gets a time no later than its own, so a time
//     search still finds the first kept record at or after a time.
//
// A segment of generation G >= 1 uses NAME.G.sidx when there is one, else
// NAME.G.idx. The sparse form has a name of its own so that an evt from
// before it finds no offsets file there and scans the segment (correct,
// if slower) rather than misreading 24-byte entries as 16-byte ones.
const (
	sparseMagic      = "EVTKEEP\x01"
	sparseHeaderSize = 16
	sparseEntrySize  = 24
)

// sparseInMemory is the largest sparse offsets file a reader holds in
// memory while the segment is open (2,730 entries); a larger one is
// searched with a pread per step. (A variable for the tests.)
var sparseInMemory int64 = 64 << 10

// isSparse reports whether an offsets file's first bytes are the sparse
// form's header.
func isSparse(head []byte) bool {
	return len(head) >= sparseHeaderSize && string(head[:8]) == sparseMagic
}

// packOffsets turns the dense offsets entries of a compacted segment into
// the sparse form when that is smaller, and returns the dense form
// otherwise.
func packOffsets(dense []byte) []byte {
	n := len(dense) / offsetEntrySize
	out := make([]byte, sparseHeaderSize, sparseHeaderSize+sparseEntrySize*16)
	copy(out, sparseMagic)
	binary.LittleEndian.PutUint64(out[8:], uint64(n))
	prevKept := true
	for i := 0; i < n; i++ {
		e := dense[i*offsetEntrySize:]
		off := binary.LittleEndian.Uint64(e)
		kept := off >= segmentHeaderSize
		if kept || prevKept {
			out = binary.LittleEndian.AppendUint64(out, uint64(i))
			out = binary.LittleEndian.AppendUint64(out, off)
			out = append(out, e[8:16]...)
			if len(out) >= len(dense) {
				return dense // the dense form is no larger
			}
		}
		prevKept = kept
	}
	return out
}

// expandOffsets turns a sparse offsets file back into dense entries (for verify, which compares
// every record with its entry). It rejects a file that is not well formed.
func expandOffsets(b []byte) ([]byte, error) {
	if !isSparse(b) || (len(b)-sparseHeaderSize)%sparseEntrySize != 0 {
		return nil, errors.New("not a whole sparse offsets file")
	}
	n := binary.LittleEndian.Uint64(b[8:])
	m := (len(b) - sparseHeaderSize) / sparseEntrySize
	if n < uint64(m) || n > 1<<32 || n > 0 && m == 0 {
		return nil, fmt.Errorf("sparse offsets file covers %d positions with %d entries", n, m)
	}
	dense := make([]byte, 0, n*offsetEntrySize)
	var last []byte // the previous entry's offset and time
	for k := 0; k < m; k++ {
		e := b[sparseHeaderSize+k*sparseEntrySize:]
		i, have := binary.LittleEndian.Uint64(e), uint64(len(dense)/offsetEntrySize)
		if i >= n || i < have || k == 0 && i != 0 {
			return nil, fmt.Errorf("sparse offsets entry %d is out of order", k)
		}
		if i > have && binary.LittleEndian.Uint64(last) >= segmentHeaderSize {
			return nil, fmt.Errorf("sparse offsets file has no entry for position %d", have)
		}
		// The positions up to this entry belong to the previous run of
		// dropped ones.
		for ; have < i; have++ {
			dense = append(dense, last...)
		}
		last = e[8:24]
		dense = append(dense, last...)
	}
	if have := uint64(len(dense) / offsetEntrySize); have < n && binary.LittleEndian.Uint64(last) >= segmentHeaderSize {
		return nil, fmt.Errorf("sparse offsets file has no entry for position %d", have)
	}
	for uint64(len(dense)/offsetEntrySize) < n {
		dense = append(dense, last...)
	}
	return dense, nil
}

// openIdx opens the offsets file of sf, if there is one: for a compacted
// segment the sparse form, else the dense one.
func (s *Store) openIdx(sf *segFile, flag int) error {
	sf.idx, sf.sparse, sf.covered, sf.entries, sf.sparseData = nil, false, 0, 0, nil
	if sf.gen > 0 {
		f, err := s.fsys.OpenFile(join(s.dir, sparseOffsetsName(sf.first, sf.gen)), flag, 0)
		if err == nil {
			var h [sparseHeaderSize]byte
			st, serr := f.Stat()
			if n, _ := f.ReadAt(h[:], 0); serr == nil && n == len(h) && isSparse(h[:]) {
				sf.idx, sf.sparse = f, true
				sf.covered = binary.LittleEndian.Uint64(h[8:])
				sf.entries = int((st.Size() - sparseHeaderSize) / sparseEntrySize)
				// A small file is read once: a lookup is then a binary
				// search in memory, not a pread per step.
				if st.Size() <= sparseInMemory {
					b := make([]byte, st.Size())
					if n, _ := f.ReadAt(b, 0); n == len(b) {
						sf.sparseData = b
					}
				}
				return nil
			}
			// Not a sparse offsets file: as if missing (verify says so,
			// reads scan the segment).
			f.Close()
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	f, err := s.fsys.OpenFile(join(s.dir, offsetsNameGen(sf.first, sf.gen)), flag, 0)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err == nil {
		sf.idx = f
	}
	return nil
}

// writeOffsets writes the offsets file of a compacted segment's
// generation gen in its smaller form (dense entries in, see packOffsets),
// synced, and removes a file of the other form.
func (s *Store) writeOffsets(first uint64, gen uint32, dense []byte) error {
	b := packOffsets(dense)
	name, other := offsetsNameGen(first, gen), sparseOffsetsName(first, gen)
	if isSparse(b) {
		name, other = other, name
	}
	if err := atomicfile.WriteFS(s.fsys, join(s.dir, name), b, 0o600); err != nil {
		return err
	}
	if err := s.fsys.Remove(join(s.dir, other)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// sparseEntry reads the k-th entry of a sparse offsets file.
func (sf *segFile) sparseEntry(k int) (pos uint64, off, t int64, err error) {
	at := sparseHeaderSize + k*sparseEntrySize
	if sf.sparseData != nil {
		e := sf.sparseData[at : at+sparseEntrySize]
		return sf.first + binary.LittleEndian.Uint64(e), int64(binary.LittleEndian.Uint64(e[8:])), int64(binary.LittleEndian.Uint64(e[16:])), nil
	}
	var e [sparseEntrySize]byte
	if n, err := sf.idx.ReadAt(e[:], int64(at)); n < len(e) {
		if err == nil {
			err = errors.New("short offsets entry")
		}
		return 0, 0, 0, err
	}
	return sf.first + binary.LittleEndian.Uint64(e[:]), int64(binary.LittleEndian.Uint64(e[8:])), int64(binary.LittleEndian.Uint64(e[16:])), nil
}

// sparseFind returns the index of the last sparse entry at or before pos
// (-1 if none), by binary search.
func (sf *segFile) sparseFind(pos uint64) (int, error) {
	var ferr error
	k := sort.Search(sf.entries, func(k int) bool {
		p, _, _, err := sf.sparseEntry(k)
		if err != nil {
			ferr = err
		}
		return p > pos
	}) - 1
	return k, ferr
}

// entry returns the offsets entry of pos: the record's offset (0 for a
// position compaction dropped) and time. ok is false when the offsets
// file has no entry for it (missing, short or unreadable): the caller
// then scans the segment.
func (sf *segFile) entry(pos uint64) (off, t int64, ok bool) {
	if sf.idx == nil || pos < sf.first {
		return 0, 0, false
	}
	if !sf.sparse {
		var e [offsetEntrySize]byte
		if n, _ := sf.idx.ReadAt(e[:], int64(pos-sf.first)*offsetEntrySize); n < offsetEntrySize {
			return 0, 0, false
		}
		return int64(binary.LittleEndian.Uint64(e[:])), int64(binary.LittleEndian.Uint64(e[8:])), true
	}
	if pos-sf.first >= sf.covered {
		return 0, 0, false
	}
	k, err := sf.sparseFind(pos)
	if err != nil || k < 0 {
		return 0, 0, false
	}
	p, off, t, err := sf.sparseEntry(k)
	switch {
	case err != nil:
		return 0, 0, false
	case p == pos:
		return off, t, true
	case off < segmentHeaderSize:
		return 0, t, true // inside a run of dropped positions
	}
	return 0, 0, false // a kept entry, then a position with none: not well formed
}

// nextKept returns the position and offset of the first record the
// sparse offsets file lists at or after from; off 0 when there is none.
func (sf *segFile) nextKept(from uint64) (pos uint64, off int64, err error) {
	k, err := sf.sparseFind(from)
	if err != nil {
		return 0, 0, err
	}
	for k = max(k, 0); k < sf.entries; k++ {
		p, off, _, err := sf.sparseEntry(k)
		if err != nil {
			return 0, 0, err
		}
		if p >= from && off >= segmentHeaderSize {
			return p, off, nil
		}
	}
	return 0, 0, nil
}

// keptIn counts the records a sparse offsets file lists in positions
// [lo, hi) and returns the first of them: every kept record has an entry
// of its own (a dropped run has one at its start).
func (sf *segFile) keptIn(lo, hi uint64) (n, first uint64, err error) {
	k, err := sf.sparseFind(lo)
	if err != nil {
		return 0, 0, err
	}
	for k = max(k, 0); k < sf.entries; k++ {
		p, off, _, err := sf.sparseEntry(k)
		if err != nil {
			return 0, 0, err
		}
		if p >= hi {
			break
		}
		if p >= lo && off >= segmentHeaderSize {
			if n == 0 {
				first = p
			}
			n++
		}
	}
	return n, first, nil
}
