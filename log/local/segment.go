package local

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// A segment file holds a run of consecutive records of the global log. It
// is named by the position of its first record (zero-padded, so a directory
// listing sorts in log order) and starts with a 64-byte header:
//
//	 0  magic "EVTSEG\x00\x01" (8 bytes)
//	 8  format version u32 (1)
//	12  header size u32 (64)
//	16  first position u64 (equals the file name)
//	24  created, unix nanoseconds i64
//	32  generation u32: 0 as appended, n after its n-th compaction
//	36  reserved, zero (4 bytes)
//	40  size before its first compaction u64 (0 in generation 0)
//	48  reserved, zero (12 bytes)
//	60  crc32c of bytes [0, 60) u32
//
// Records follow back to back from offset 64. Only the active (last)
// segment grows; once the next segment exists a segment never changes
// again. Next to each segment, NAME.idx holds one 16-byte entry per
// position (offset u64, time i64): position p of the segment whose first
// position is f lives at entry p-f. It is derived data, rebuilt from the
// segment by recovery and `evt repair`.
const (
	segmentMagic      = "EVTSEG\x00\x01"
	segmentFormat     = 1
	segmentHeaderSize = 64
	offsetEntrySize   = 16
	// DefaultSegmentSize is the size at which the active segment is sealed
	// and a new one started. Large enough that a store of a billion events
	// has a few thousand files, small enough that recovery after a power
	// loss (which rescans the active segment) reads at most this much.
	DefaultSegmentSize = 64 << 20
)

func segmentName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }
func offsetsName(first uint64) string { return fmt.Sprintf("%020d.idx", first) }

// offsetsNameGen names the offsets file of a segment's generation gen. A
// compacted segment's offsets file carries the generation in its name, so
// the swap of a compacted segment is one rename: the new segment file
// arrives already pointing at its own, complete offsets file.
func offsetsNameGen(first uint64, gen uint32) string {
	if gen == 0 {
		return offsetsName(first)
	}
	return fmt.Sprintf("%020d.%d.idx", first, gen)
}

// sparseOffsetsName names the sparse offsets file (offsets.go) of a
// compacted segment's generation gen. It has a name of its own so that
// an evt from before the sparse form, which does not know it, finds no
// offsets file and scans the segment instead of misreading entries.
func sparseOffsetsName(first uint64, gen uint32) string {
	return fmt.Sprintf("%020d.%d.sidx", first, gen)
}

func encodeSegmentHeader(first uint64, created int64) []byte {
	return encodeSegmentHeaderGen(first, created, 0, 0)
}

// encodeSegmentHeaderGen makes the header of generation gen; origSize is
// the segment's size as appended, which max-bytes goes by (compaction
// must not make the log look smaller than the limits left it).
func encodeSegmentHeaderGen(first uint64, created int64, gen uint32, origSize int64) []byte {
	h := make([]byte, segmentHeaderSize)
	copy(h, segmentMagic)
	binary.LittleEndian.PutUint32(h[8:], segmentFormat)
	binary.LittleEndian.PutUint32(h[12:], segmentHeaderSize)
	binary.LittleEndian.PutUint64(h[16:], first)
	binary.LittleEndian.PutUint64(h[24:], uint64(created))
	binary.LittleEndian.PutUint32(h[32:], gen)
	binary.LittleEndian.PutUint64(h[40:], uint64(origSize))
	binary.LittleEndian.PutUint32(h[60:], codec.Checksum(h[:60]))
	return h
}

// checkSegmentHeader validates the header of the segment named for first
// and returns its generation.
func checkSegmentHeader(f io.ReaderAt, first uint64) (uint32, error) {
	h := make([]byte, segmentHeaderSize)
	name := segmentName(first)
	if _, err := f.ReadAt(h, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, &log.CorruptError{File: name, Offset: 0, Reason: "shorter than its header"}
		}
		return 0, err
	}
	return binary.LittleEndian.Uint32(h[32:]), checkHeaderBytes(h, first)
}

// checkHeaderBytes validates a segment header: a header it accepts is one
// encodeSegmentHeaderGen writes (FuzzSegmentHeader).
func checkHeaderBytes(h []byte, first uint64) error {
	name := segmentName(first)
	switch {
	case len(h) < segmentHeaderSize:
		return &log.CorruptError{File: name, Offset: 0, Reason: "shorter than its header"}
	case string(h[:8]) != segmentMagic:
		return &log.CorruptError{File: name, Offset: 0, Reason: "not an evt segment (bad magic)"}
	case binary.LittleEndian.Uint32(h[60:]) != codec.Checksum(h[:60]):
		return &log.CorruptError{File: name, Offset: 0, Reason: "header checksum mismatch"}
	case binary.LittleEndian.Uint32(h[8:]) != segmentFormat:
		return &log.CorruptError{File: name, Offset: 0, Reason: fmt.Sprintf("format version %d, this evt reads %d", binary.LittleEndian.Uint32(h[8:]), segmentFormat)}
	case binary.LittleEndian.Uint32(h[12:]) != segmentHeaderSize:
		return &log.CorruptError{File: name, Offset: 0, Reason: fmt.Sprintf("header size %d, want %d", binary.LittleEndian.Uint32(h[12:]), segmentHeaderSize)}
	case binary.LittleEndian.Uint64(h[16:]) != first:
		return &log.CorruptError{File: name, Offset: 0, Reason: "header does not match the file name"}
	case !allZero(h[36:40]) || !allZero(h[48:60]):
		return &log.CorruptError{File: name, Offset: 0, Reason: "reserved header bytes are not zero"}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// listSegments returns the first positions of the segments in dir, sorted.
func listSegments(fsys vfs.FS, dir string) ([]uint64, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var firsts []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") || len(name) != 24 {
			continue
		}
		n, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || n == 0 {
			continue
		}
		firsts = append(firsts, n)
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	return firsts, nil
}

// recordScanner reads records forward from a segment file between two
// offsets, in large preads, validating each. It never reads past limit,
// so a reader bounded by the committed end never sees a partial batch.
type recordScanner struct {
	f      io.ReaderAt
	name   string
	off    int64 // file offset of buf[pos]
	limit  int64
	buf    []byte
	pos    int // start of the unread bytes in buf
	end    int // end of the valid bytes in buf
	rec    codec.Record
	recOff int64 // file offset of rec
	err    error
	// read is how much the next refill asks for: it starts small and
	// doubles, so a scan that stops after a few records (a consumer's
	// batch) does not read megabytes, and a long one soon reads big.
	read int
}

const scanChunk = 1 << 20 // at least codec.MaxRecordSize, so one record always fits

func newRecordScanner(f io.ReaderAt, name string, from, limit int64, buf []byte) *recordScanner {
	if cap(buf) < 2*scanChunk {
		buf = make([]byte, 2*scanChunk)
	}
	return &recordScanner{f: f, name: name, off: from, limit: limit, buf: buf[:cap(buf)], read: 64 << 10}
}

// Next decodes the next record; it returns false at the limit or on error
// (see Err).
func (s *recordScanner) Next() bool {
	if s.err != nil {
		return false
	}
	for {
		avail := s.buf[s.pos:s.end]
		if len(avail) > 0 {
			rec, err := codec.DecodeRecord(avail)
			if err == nil {
				s.rec = rec
				s.recOff = s.off
				s.pos += rec.Size
				s.off += int64(rec.Size)
				return true
			}
			if !errors.Is(err, codec.ErrShortRecord) {
				s.err = &log.CorruptError{File: s.name, Offset: s.off, Reason: err.Error()}
				return false
			}
		}
		// Need more bytes: move the unread tail to the front and refill.
		left := s.limit - s.off - int64(len(avail))
		if left <= 0 {
			if len(avail) > 0 {
				s.err = &log.CorruptError{File: s.name, Offset: s.off, Reason: "record runs past the end"}
			}
			return false
		}
		n := copy(s.buf, avail)
		s.pos, s.end = 0, n
		want := int64(min(len(s.buf)-n, s.read))
		s.read = min(2*s.read, len(s.buf))
		if want > left {
			want = left
		}
		m, err := s.f.ReadAt(s.buf[n:n+int(want)], s.off+int64(n))
		s.end += m
		if m == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				s.err = &log.CorruptError{File: s.name, Offset: s.off, Reason: "file shorter than its committed end"}
			} else {
				s.err = err
			}
			return false
		}
	}
}

// Record returns the record decoded by the last Next; valid until Next.
func (s *recordScanner) Record() *codec.Record { return &s.rec }

// Offset is the file offset of the current record.
func (s *recordScanner) Offset() int64 { return s.recOff }

// Err returns the error that stopped the scan, if any.
func (s *recordScanner) Err() error { return s.err }

// readRecordAt reads the single record at off in f into buf.
func readRecordAt(f io.ReaderAt, name string, off int64, buf []byte) (codec.Record, []byte, error) {
	if cap(buf) < 4096 {
		buf = make([]byte, 4096)
	}
	buf = buf[:4096]
	n, err := f.ReadAt(buf, off)
	if n < codec.RecordHeaderSize {
		if err == nil || errors.Is(err, io.EOF) {
			err = &log.CorruptError{File: name, Offset: off, Reason: "record past the end of the file"}
		}
		return codec.Record{}, buf, err
	}
	size := codec.RecordLength(buf)
	if size > n && size <= codec.MaxRecordSize {
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if m, err := f.ReadAt(buf, off); m < size {
			if err == nil || errors.Is(err, io.EOF) {
				err = &log.CorruptError{File: name, Offset: off, Reason: "record past the end of the file"}
			}
			return codec.Record{}, buf, err
		}
		n = size
	}
	rec, err := codec.DecodeRecord(buf[:n])
	if err != nil {
		return rec, buf, &log.CorruptError{File: name, Offset: off, Reason: err.Error()}
	}
	return rec, buf, nil
}

func join(dir, name string) string { return filepath.Join(dir, name) }
