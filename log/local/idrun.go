package local

// PROTOTYPE (branch s4-idindex): nothing in the store reads or writes id
// runs yet; the `ids` hash table is still the id index. This file is the
// building block of the replacement that ../notes/report-idindex.md
// designs and measures, with its tests (idrun_test.go). See there for the
// wiring that is still to do; do not wire half of it.
//
// An id run is an immutable, sorted file of the ids of the events at
// positions [from, to): one run per sealed segment, written when the
// segment is sealed, and runs merged LSM-style (merged file renamed over
// the first input, the other inputs removed) off the append lock. Because
// every hit is checked against the record it names (as the hash table's
// hits already are: see Appender.stored), an entry need not identify an
// id exactly: it holds only 32 bits of the id's key and the position
// relative to the run's start, 8 bytes in all. A lookup returns every
// position whose entry has the key's 32 bits; a false candidate costs one
// record read (about one per 4 billion entries searched), and an id the
// run holds is never missed, so idempotency stays exact.
//
// Layout (little-endian):
//
//	 0  magic "EVTIDRN\x01"
//	 8  from u64     first position the run covers
//	16  to u64       positions < to are covered
//	24  count u64    entries
//	32  crc32c of the entries u32
//	36  crc32c of [0, 36) u32
//	40  zero to 64
//	64  entries: count × u64, ascending: key.a>>32 << 32 | (position - from)
//
// A run spans at most 2^32 positions (merges stop there).

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

const (
	idRunMagic      = "EVTIDRN\x01"
	idRunHeaderSize = 64
	idRunMaxSpan    = 1 << 32
)

// idRun is an open run, mapped read-only: the file never changes once
// renamed into place, and a process that maps a run another process has
// since removed keeps reading the old inode.
type idRun struct {
	name     string
	from, to uint64
	mem      []byte   // the whole file
	entries  []uint64 // view of mem past the header
}

// idEntry packs one entry of a run starting at from.
func idEntry(key hashKey, pos, from uint64) uint64 {
	return key.a>>32<<32 | (pos - from)
}

// writeIDRun writes the sorted run of ents (packed for from, in any
// order; sorted here) covering [from, to) at path through a temporary
// file, synced, renamed into place and the directory synced.
func writeIDRun(fsys vfs.FS, dir, path string, from, to uint64, ents []uint64) error {
	if to < from || to-from > idRunMaxSpan {
		return fmt.Errorf("id run [%d, %d) spans too many positions", from, to)
	}
	slices.Sort(ents)
	return writeIDRunFrom(fsys, dir, path, from, to, uint64(len(ents)), func(emit func(uint64) error) error {
		for _, e := range ents {
			if err := emit(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeIDRunFrom writes a run of count entries that fill gives in
// ascending order, streaming them (a merge of runs larger than memory).
func writeIDRunFrom(fsys vfs.FS, dir, path string, from, to, count uint64, fill func(emit func(uint64) error) error) error {
	tmp := path + ".tmp"
	fsys.Remove(tmp)
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			fsys.Remove(tmp)
		}
	}()
	if _, err := f.WriteAt(make([]byte, idRunHeaderSize), 0); err != nil {
		return err
	}
	// Entries are gathered in a buffer, checksummed and written a
	// megabyte at a time.
	buf := make([]byte, 0, 1<<20)
	off := int64(idRunHeaderSize)
	var sum uint32
	flush := func() error {
		sum = codec.UpdateChecksum(sum, buf)
		_, err := f.WriteAt(buf, off)
		off += int64(len(buf))
		buf = buf[:0]
		return err
	}
	n, last := uint64(0), uint64(0)
	err = fill(func(e uint64) error {
		if n > 0 && e < last {
			return fmt.Errorf("id run %s: entries out of order", baseName(path))
		}
		last = e
		n++
		buf = binary.LittleEndian.AppendUint64(buf, e)
		if len(buf) == cap(buf) {
			return flush()
		}
		return nil
	})
	if err == nil && n != count {
		err = fmt.Errorf("id run %s: %d entries, expected %d", baseName(path), n, count)
	}
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	hdr := make([]byte, idRunHeaderSize)
	copy(hdr, idRunMagic)
	binary.LittleEndian.PutUint64(hdr[8:], from)
	binary.LittleEndian.PutUint64(hdr[16:], to)
	binary.LittleEndian.PutUint64(hdr[24:], count)
	binary.LittleEndian.PutUint32(hdr[32:], sum)
	binary.LittleEndian.PutUint32(hdr[36:], codec.Checksum(hdr[:36]))
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return err
	}
	if err := f.Datasync(); err != nil {
		return fmt.Errorf("sync %s: %w", baseName(tmp), err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	ok = true
	if err := fsys.Rename(tmp, path); err != nil {
		fsys.Remove(tmp)
		return err
	}
	return fsys.SyncDir(dir)
}

// openIDRun maps the run at path and checks its header. The entries'
// checksum is checked only by verifyIDRun: a lookup must not read the
// whole file.
func openIDRun(fsys vfs.FS, path string) (*idRun, error) {
	name := baseName(path)
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, idRunHeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil || string(hdr[:8]) != idRunMagic ||
		binary.LittleEndian.Uint32(hdr[36:]) != codec.Checksum(hdr[:36]) {
		return nil, &log.CorruptError{File: name, Offset: 0, Reason: "bad header"}
	}
	r := &idRun{name: name, from: binary.LittleEndian.Uint64(hdr[8:]), to: binary.LittleEndian.Uint64(hdr[16:])}
	count := binary.LittleEndian.Uint64(hdr[24:])
	if r.to < r.from || r.to-r.from > idRunMaxSpan || st.Size() != int64(idRunHeaderSize+8*count) {
		return nil, &log.CorruptError{File: name, Offset: 0, Reason: "header does not match the file"}
	}
	if count == 0 {
		return r, nil
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", name, err)
	}
	r.mem = mem
	r.entries = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[idRunHeaderSize])), count)
	return r, nil
}

func (r *idRun) close() {
	if r != nil && r.mem != nil {
		unix.Munmap(r.mem)
		r.mem, r.entries = nil, nil
	}
}

// candidates calls fn with every position whose entry matches key's 32
// bits, in ascending order, until fn returns false. The caller checks
// each against the record it names.
func (r *idRun) candidates(key hashKey, fn func(pos uint64) bool) {
	fp := key.a >> 32 << 32
	i, _ := slices.BinarySearch(r.entries, fp)
	for ; i < len(r.entries) && r.entries[i]&^0xffffffff == fp; i++ {
		if !fn(r.from + r.entries[i]&0xffffffff) {
			return
		}
	}
}

// verifyIDRun checks the entries' checksum.
func verifyIDRun(fsys vfs.FS, path string) error {
	data, err := vfs.ReadFile(fsys, path)
	if err != nil {
		return err
	}
	if len(data) < idRunHeaderSize || binary.LittleEndian.Uint32(data[32:]) != codec.Checksum(data[idRunHeaderSize:]) {
		return &log.CorruptError{File: baseName(path), Offset: idRunHeaderSize, Reason: "entries do not match their checksum"}
	}
	return nil
}

// mergeIDRuns writes one run at path holding every entry of runs, which
// cover adjacent ranges in order ([from0, to0), [to0, to1), …), for which
// keep returns true (compaction passes the positions it still holds; a
// merge alone, nil). It streams: memory is a heap of one cursor per run.
func mergeIDRuns(fsys vfs.FS, dir, path string, runs []*idRun, keep func(pos uint64) bool) error {
	from, to := runs[0].from, runs[len(runs)-1].to
	for i := 1; i < len(runs); i++ {
		if runs[i].from != runs[i-1].to {
			return fmt.Errorf("id runs %s and %s are not adjacent", runs[i-1].name, runs[i].name)
		}
	}
	if to-from > idRunMaxSpan {
		return fmt.Errorf("id runs [%d, %d) span too many positions to merge", from, to)
	}
	count := uint64(0)
	if keep == nil {
		for _, r := range runs {
			count += uint64(len(r.entries))
		}
	} else {
		for _, r := range runs {
			for _, e := range r.entries {
				if keep(r.from + e&0xffffffff) {
					count++
				}
			}
		}
	}
	h := make(runHeap, 0, len(runs))
	for _, r := range runs {
		if len(r.entries) > 0 {
			h = append(h, runCursor{r: r, shift: r.from - from})
		}
	}
	heap.Init(&h)
	return writeIDRunFrom(fsys, dir, path, from, to, count, func(emit func(uint64) error) error {
		for len(h) > 0 {
			e := h[0].head() // rebased onto from
			if h[0].i++; h[0].i == len(h[0].r.entries) {
				heap.Pop(&h)
			} else {
				heap.Fix(&h, 0)
			}
			if keep != nil && !keep(from+e&0xffffffff) {
				continue
			}
			if err := emit(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// runCursor walks one run of a merge; its entries are rebased by shift
// (the distance of its start from the merged run's).
type runCursor struct {
	r     *idRun
	i     int
	shift uint64
}

func (c *runCursor) head() uint64 { return c.r.entries[c.i] + c.shift }

type runHeap []runCursor

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].head() < h[j].head() }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(runCursor)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
