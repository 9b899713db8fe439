package local

import (
	"encoding/binary"

	"github.com/evtdev/evt/codec"
)

// storedReader reads the records an append's id hits name (is this id
// already stored?) through two windows, one of a segment's offsets file
// and one of its bytes. A re-import checks every event of the input, in
// the order they were exported, so the hits run forward through the log:
// recordAt's two preads per check (an offsets entry, then 4 KiB of
// record) were half of a re-import's CPU; a window serves thousands.
//
// Only committed bytes are ever held: the append lock keeps them as they
// are (compaction writes a new file; the old one, which the segFile
// holds open, keeps its bytes). Anything the windows cannot serve (a
// sparse offsets file, a record across the window's end, a mismatch) is
// read by recordAt, which reports errors as it always did.
type storedReader struct {
	idxOf   *segFile
	idxFrom uint64 // position of the first entry in idx
	idx     []byte // dense offsets entries from idxFrom

	segOf   *segFile
	segFrom int64 // file offset of seg[0]
	seg     []byte
}

const (
	storedIdxWindow = 4096 * offsetEntrySize
	storedSegWindow = 256 << 10
)

// recordAt is Store.recordAt through the windows.
func (a *Appender) recordAt(pos uint64) (codec.Record, error) {
	s, c, r := a.s, &a.c, &a.hits
	first, err := s.segmentFor(pos, c)
	if err != nil {
		return codec.Record{}, err
	}
	sf, err := s.segment(first)
	if err != nil || sf.sparse || sf.idx == nil {
		return s.recordAt(pos, c)
	}
	// The committed ends: the active segment holds the batch past them.
	endPos, endOff := uint64(0), int64(0)
	if first == c.active {
		endPos, endOff = c.next, c.size
	}
	off, ok := r.offset(sf, pos, endPos)
	if !ok || off < segmentHeaderSize {
		return s.recordAt(pos, c)
	}
	if rec, ok := r.record(sf, off, endOff); ok && rec.Position == pos {
		return rec, nil
	}
	return s.recordAt(pos, c)
}

// offset returns pos's offset from the offsets window of sf, reading the
// window from pos on when it does not hold it; end, if not 0, is the
// first position not committed.
func (r *storedReader) offset(sf *segFile, pos, end uint64) (int64, bool) {
	if r.idxOf != sf || pos < r.idxFrom || pos-r.idxFrom >= uint64(len(r.idx)/offsetEntrySize) {
		n := storedIdxWindow
		if end != 0 {
			n = min(n, int(end-pos)*offsetEntrySize)
		}
		if cap(r.idx) < storedIdxWindow {
			r.idx = make([]byte, storedIdxWindow)
		}
		got, _ := sf.idx.ReadAt(r.idx[:n], int64(pos-sf.first)*offsetEntrySize)
		r.idxOf, r.idxFrom, r.idx = sf, pos, r.idx[:got-got%offsetEntrySize]
		if len(r.idx) == 0 {
			r.idxOf = nil
			return 0, false
		}
	}
	i := (pos - r.idxFrom) * offsetEntrySize
	return int64(binary.LittleEndian.Uint64(r.idx[i:])), true
}

// record decodes the record at off from the segment window of sf,
// reading the window from off on when it does not hold the whole record;
// end, if not 0, is the committed size.
func (r *storedReader) record(sf *segFile, off, end int64) (codec.Record, bool) {
	if rec, ok := r.inWindow(sf, off); ok {
		return rec, true
	}
	n := storedSegWindow
	if end != 0 {
		n = int(min(int64(n), end-off))
	}
	if n < codec.RecordHeaderSize {
		return codec.Record{}, false
	}
	if cap(r.seg) < storedSegWindow {
		r.seg = make([]byte, storedSegWindow)
	}
	got, _ := sf.f.ReadAt(r.seg[:n], off)
	r.segOf, r.segFrom, r.seg = sf, off, r.seg[:got]
	return r.inWindow(sf, off)
}

func (r *storedReader) inWindow(sf *segFile, off int64) (codec.Record, bool) {
	if r.segOf != sf || off < r.segFrom || off-r.segFrom+codec.RecordHeaderSize > int64(len(r.seg)) {
		return codec.Record{}, false
	}
	b := r.seg[off-r.segFrom:]
	if n := codec.RecordLength(b); n > len(b) {
		return codec.Record{}, false
	}
	rec, err := codec.DecodeRecord(b)
	return rec, err == nil
}
