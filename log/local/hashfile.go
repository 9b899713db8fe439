package local

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// hashFile is an open-addressing hash table in a file of its own, mapped
// into memory (MAP_SHARED) so a lookup in a fresh process is a few memory
// reads, O(1) in the size of the store. It backs the heads table (stream →
// version, last and first position) and the id index ((stream, id) →
// position). Both are derived from the segments and rebuilt by repair.
//
// mmap is safe here where it is not for segments: a table file is never
// truncated in place. It grows by being rebuilt into a new file that is
// renamed over the old one, after which the old file's header gets the
// moved flag; a process that still maps the old inode sees the flag on its
// next lookup and reopens.
//
// Layout (native little-endian; evt supports little-endian machines only;
// format 2 is the id index's, whose words at 64 and 72 are its own):
//
//	   0  magic "EVTHASH\x01"
//	   8  format u32 (1)        12  values per slot u32 (k)
//	  16  slots u64 (power of 2)
//	  24  crc32c of [0, 24) u32
//	  32  count u64             occupied slots
//	  40  applied u64           every position ≤ applied is reflected
//	  48  moved u64             1 once the file has been replaced
//	  56  cuts u64              heads: 1 once any stream has a cut
//	  64  from, gen u64         ids of format 2: see idindex.go
//	4096  slots: key1 u64, key2 u64, k values u64 each
//
// A key is 128 bits from two unrelated hash functions (xxhash64 and
// FNV-1a 64) of the name: the chance that two of a billion names share
// one is below 1e-20, so a hit is trusted without reading the log.
// key1 is never 0; a zero key1 marks an empty slot. Linear probing, load
// kept at most 1/2.
//
// Concurrency: only the holder of the append lock writes. Every word is
// read and written with atomic 64-bit operations; a new slot's values are
// stored before its key, and `applied` after the slots it covers, so a
// reader that loads `applied` first never sees less than it claims.
type hashFile struct {
	path  string
	fsys  vfs.FS
	f     vfs.File
	mem   []byte
	k     int // values per slot
	slots uint64
	width uint64 // bytes per slot
	rw    bool
}

const (
	hashFixedHeader = 32 // the checksummed part and its padding: [0, 32)
	hashMagic       = "EVTHASH\x01"
	hashHeaderSize  = 4096
	hashMinSlots    = 1024
)

type hashKey struct{ a, b uint64 }

func keyOf(s string) hashKey {
	a := xxhash.Sum64String(s)
	if a == 0 {
		a = 1
	}
	return hashKey{a, fnv1a(fnvOffset, s)}
}

// idKey is the id index key of an event id inside a stream: the key of
// stream + "\x00" + id, computed without building that string.
func idKey(stream, id string) hashKey {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(stream)
	d.WriteString("\x00")
	d.WriteString(id)
	a := d.Sum64()
	if a == 0 {
		a = 1
	}
	return hashKey{a, fnv1a(fnv1a(fnv1a(fnvOffset, stream), "\x00"), id)}
}

// idKeyBytes is idKey for an id held as bytes (read from a record).
func idKeyBytes(stream string, id []byte) hashKey {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(stream)
	d.WriteString("\x00")
	d.Write(id)
	a := d.Sum64()
	if a == 0 {
		a = 1
	}
	h := fnv1a(fnv1a(fnvOffset, stream), "\x00")
	for _, c := range id {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return hashKey{a, h}
}

// FNV-1a 64, inline: hash/fnv's interface costs an allocation per key.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func (h *hashFile) word(off uint64) *uint64 {
	return (*uint64)(unsafe.Pointer(&h.mem[off]))
}

func (h *hashFile) load(off uint64) uint64     { return atomic.LoadUint64(h.word(off)) }
func (h *hashFile) store(off uint64, v uint64) { atomic.StoreUint64(h.word(off), v) }

// createHashFile writes an empty table with room for at least n entries
// at path, replacing any leftover file, and opens it. Callers create under
// a temporary name and rename into place once the table is filled.
func createHashFile(fsys vfs.FS, path string, k int, n uint64) (*hashFile, error) {
	slots := uint64(hashMinSlots)
	for slots < 2*n {
		slots *= 2
	}
	fsys.Remove(path)
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	h, err := initHashFile(fsys, f, path, k, slots)
	if err != nil {
		f.Close()
		fsys.Remove(path)
		return nil, err
	}
	return h, nil
}

func initHashFile(fsys vfs.FS, f vfs.File, path string, k int, slots uint64) (*hashFile, error) {
	width := uint64(16 + 8*k)
	size := int64(hashHeaderSize + slots*width)
	if err := f.Truncate(size); err != nil {
		return nil, err
	}
	if err := allocate(f, size); err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(encodeHashHeader(k, slots), 0); err != nil {
		return nil, err
	}
	return mapHashFile(fsys, f, path, k, true)
}

// openHashFile maps an existing table; rw selects a writable mapping.
func openHashFile(fsys vfs.FS, path string, k int, rw bool) (*hashFile, error) {
	flag := os.O_RDONLY
	if rw {
		flag = os.O_RDWR
	}
	f, err := fsys.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	h, err := mapHashFile(fsys, f, path, k, rw)
	if err != nil {
		f.Close()
		return nil, err
	}
	return h, nil
}

// encodeHashHeader makes the fixed part of a table's header.
func encodeHashHeader(k int, slots uint64) []byte {
	format := uint32(1)
	if k == idsValues {
		format = idsFormat // the id index with runs (idindex.go)
	}
	return encodeHashHeaderFormat(k, slots, format)
}

// encodeHashHeaderFormat is encodeHashHeader for a given format.
func encodeHashHeaderFormat(k int, slots uint64, format uint32) []byte {
	hdr := make([]byte, hashFixedHeader)
	copy(hdr, hashMagic)
	binary.LittleEndian.PutUint32(hdr[8:], format)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(k))
	binary.LittleEndian.PutUint64(hdr[16:], slots)
	binary.LittleEndian.PutUint32(hdr[24:], codec.Checksum(hdr[:24]))
	return hdr
}

// decodeHashHeader checks the fixed part of the header of a table with k
// values per slot in a file of size bytes, and returns its slot count. A
// header it accepts is one encodeHashHeader writes (FuzzHashHeader).
func decodeHashHeader(name string, hdr []byte, k int, size int64) (uint64, error) {
	if len(hdr) < hashFixedHeader || string(hdr[:8]) != hashMagic || binary.LittleEndian.Uint32(hdr[24:]) != codec.Checksum(hdr[:24]) {
		return 0, &log.CorruptError{File: name, Offset: 0, Reason: "bad header"}
	}
	slots := binary.LittleEndian.Uint64(hdr[16:])
	format := binary.LittleEndian.Uint32(hdr[8:])
	if format != 1 && (format != idsFormat || k != idsValues) || !allZero(hdr[28:32]) {
		return 0, &log.CorruptError{File: name, Offset: 0, Reason: "unknown table format"}
	}
	if int(binary.LittleEndian.Uint32(hdr[12:])) != k || slots == 0 || slots&(slots-1) != 0 || slots > 1<<40 ||
		size != int64(hashHeaderSize+slots*uint64(16+8*k)) {
		return 0, &log.CorruptError{File: name, Offset: 0, Reason: "header does not match the file"}
	}
	return slots, nil
}

func mapHashFile(fsys vfs.FS, f vfs.File, path string, k int, rw bool) (*hashFile, error) {
	name := baseName(path)
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, hashFixedHeader)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, &log.CorruptError{File: name, Offset: 0, Reason: "shorter than its header"}
	}
	slots, err := decodeHashHeader(name, hdr, k, st.Size())
	if err != nil {
		return nil, err
	}
	width := uint64(16 + 8*k)
	prot := unix.PROT_READ
	if rw {
		prot |= unix.PROT_WRITE
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", name, err)
	}
	return &hashFile{path: path, fsys: fsys, f: f, mem: mem, k: k, slots: slots, width: width, rw: rw}, nil
}

func (h *hashFile) close() error {
	if h == nil {
		return nil
	}
	if h.mem != nil {
		unix.Munmap(h.mem)
		h.mem = nil
	}
	return h.f.Close()
}

func (h *hashFile) count() uint64       { return h.load(32) }
func (h *hashFile) applied() uint64     { return h.load(40) }
func (h *hashFile) setApplied(p uint64) { h.store(40, p) }
func (h *hashFile) moved() bool         { return h.load(48) != 0 }
func (h *hashFile) hasCuts() bool       { return h.load(56) != 0 }
func (h *hashFile) setCuts()            { h.store(56, 1) }

// get returns the values stored for key, or nil if absent.
func (h *hashFile) get(key hashKey, vals []uint64) bool {
	mask := h.slots - 1
	for i := key.a & mask; ; i = (i + 1) & mask {
		off := hashHeaderSize + i*h.width
		a := h.load(off)
		if a == 0 {
			return false
		}
		if a == key.a && h.load(off+8) == key.b {
			for j := range vals {
				vals[j] = h.load(off + 16 + 8*uint64(j))
			}
			return true
		}
	}
}

// put inserts or overwrites key's values. The caller guarantees room
// (see reserve) and holds the append lock.
func (h *hashFile) put(key hashKey, vals []uint64) {
	mask := h.slots - 1
	for i := key.a & mask; ; i = (i + 1) & mask {
		off := hashHeaderSize + i*h.width
		a := h.load(off)
		if a == key.a && h.load(off+8) == key.b {
			for j, v := range vals {
				h.store(off+16+8*uint64(j), v)
			}
			return
		}
		if a == 0 {
			for j, v := range vals {
				h.store(off+16+8*uint64(j), v)
			}
			h.store(off+8, key.b)
			h.store(off, key.a) // last: makes the slot visible
			h.store(32, h.count()+1)
			return
		}
	}
}

// recount sets the count from the occupied slots. put makes a new slot
// visible before it adds one to the count, so a writer killed between
// the two leaves the count one short; the next writer's catch-up puts
// that key again, finds it, and adds nothing. The catch-up after such a
// kill recounts (a scan of the slots, only on that path). The caller
// holds the append lock.
func (h *hashFile) recount() {
	n := uint64(0)
	for i := uint64(0); i < h.slots; i++ {
		if h.load(hashHeaderSize+i*h.width) != 0 {
			n++
		}
	}
	if n != h.count() {
		h.store(32, n)
	}
}

// each calls fn for every occupied slot.
func (h *hashFile) each(fn func(key hashKey, vals []uint64) bool) {
	vals := make([]uint64, h.k)
	for i := uint64(0); i < h.slots; i++ {
		off := hashHeaderSize + i*h.width
		a := h.load(off)
		if a == 0 {
			continue
		}
		for j := range vals {
			vals[j] = h.load(off + 16 + 8*uint64(j))
		}
		if !fn(hashKey{a, h.load(off + 8)}, vals) {
			return
		}
	}
}

// reserve makes room for n more entries, growing the table by rebuilding
// it into a new file renamed over this one. It returns the table to use.
func (h *hashFile) reserve(n uint64) (*hashFile, error) {
	if 2*(h.count()+n) <= h.slots {
		return h, nil
	}
	g, err := createHashFile(h.fsys, h.path+".grow", h.k, h.count()+n)
	if err != nil {
		return nil, err
	}
	h.each(func(key hashKey, vals []uint64) bool {
		g.put(key, vals)
		return true
	})
	return h.replaceBy(g)
}

// replaceBy makes g, filled from h, the table at h's path: it copies h's
// marks, syncs g and renames it over h, which it flags moved and closes.
func (h *hashFile) replaceBy(g *hashFile) (*hashFile, error) {
	g.setApplied(h.applied())
	g.store(56, h.load(56))
	if g.load(idsFromWord) == 0 { // a grown table covers what h did
		g.store(idsFromWord, h.load(idsFromWord))
	}
	g.store(idsGenWord, max(g.load(idsGenWord), h.load(idsGenWord)))
	if err := g.sync(); err != nil {
		g.close()
		return nil, err
	}
	if err := h.fsys.Rename(g.path, h.path); err != nil {
		g.close()
		return nil, err
	}
	g.path = h.path
	h.store(48, 1) // moved: processes mapping the old file reopen
	h.close()
	return g, nil
}

// sync flushes the mapping to disk. fdatasync of the file is what
// msync(MS_SYNC) of a shared mapping does on Linux (both write back the
// file's dirty pages, those dirtied through the mapping included); it
// goes through the seam so a test can fail it.
func (h *hashFile) sync() error {
	if err := h.f.Datasync(); err != nil {
		return &fs.PathError{Op: "sync", Path: h.path, Err: err}
	}
	return nil
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
