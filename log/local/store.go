package local

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// SyncPolicy says when appended data is fdatasynced.
type SyncPolicy int

const (
	// SyncAlways fdatasyncs every batch before acknowledging it: nothing
	// acknowledged is lost even on power loss.
	SyncAlways SyncPolicy = iota
	// SyncInterval fdatasyncs a batch when the last sync is older than
	// Options.SyncInterval: a power loss loses at most that window.
	SyncInterval
	// SyncNone never syncs (the OS writes back): survives kill -9, not
	// power loss.
	SyncNone
)

// ParseSyncPolicy reads always, interval or none.
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch s {
	case "always", "":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("invalid sync policy %q (want always, interval or none)", s)
}

func (p SyncPolicy) String() string {
	return [...]string{"always", "interval", "none"}[p]
}

// Options configure Open.
type Options struct {
	// Create makes the store directory and its files if missing; without
	// it a missing store is ErrNoStore. Only a store opened with Create
	// accepts appends.
	Create bool
	Sync   SyncPolicy
	// NoRecover opens a store for reading without the one-time recovery
	// an open runs after a reboot or when the heads table is missing
	// (evt verify: report, do not fix).
	NoRecover    bool
	SyncInterval time.Duration // default 1s
	SegmentSize  int64         // default DefaultSegmentSize
	LockTimeout  time.Duration // default 10s
	// FS is the file system under the store; nil is vfs.OS. Tests put a
	// fault-injecting one here.
	FS vfs.FS
}

const (
	headsFile = "heads"
	idsFile   = "ids"
	// heads values: last position, version, cut (see cutValue).
	headsValues = 3
	// ids values: position.
	idsValues = 1
)

// Store is an open store. A Store is safe for use by one goroutine at a
// time; processes share a store through the file system.
type Store struct {
	dir    string
	opts   Options
	fsys   vfs.FS // every file operation goes through it
	commit vfs.File
	lock   *appendLock // nil unless opened with Create
	heads  *hashFile
	ids    *hashFile // writers only
	// The id runs (idindex.go), loaded for the table runsOf at its gen
	// runsGen; writers only.
	runs     []*idRun
	runsOf   *hashFile
	runsGen  uint64
	mergeDue bool // this Store sealed a segment: merge runs after the append
	segs     map[uint64]*segFile
	lru      []uint64 // segs' keys, least recently opened first
	firsts   []uint64 // known segment first positions, sorted
	boot     [16]byte
	failed   error // sticky: set when a write or sync failed mid-append
	buf      []byte
	// scanBuf is the buffer of record scans, kept between iterations.
	scanBuf   []byte
	retention retentionCache
	sealed    bool                // an append of this Store sealed a segment
	sizes     map[[2]uint64]int64 // appendedSize by (first position, inode)
	// The name index (names.go): a reader's view, and a writer's
	// names.log with its size after our last write to it.
	names        *nameIndex
	namesLog     vfs.File
	namesLogSize int64
}

// The local store is a log.Store and does what only a store of files can.
var (
	_ log.Store          = (*Store)(nil)
	_ log.Verifier       = (*Store)(nil)
	_ log.ChainVerifier  = (*Store)(nil)
	_ log.Repairer       = (*Store)(nil)
	_ log.Compacter      = (*Store)(nil)
	_ log.StreamNamer    = (*Store)(nil)
	_ log.PrefixStreamer = (*Store)(nil)
)

// Sealed reports whether an append through this Store sealed a segment
// (for automatic compaction).
func (s *Store) Sealed() bool { return s.sealed }

type segFile struct {
	first uint64
	gen   uint32 // 0 as appended; > 0 once compacted (positions may be missing)
	f     vfs.File
	idx   vfs.File
	// sparse says idx is in the sparse form (offsets.go), covering
	// covered positions with entries entries.
	sparse     bool
	covered    uint64
	entries    int
	sparseData []byte // the whole sparse file, when small (sparseInMemory)
}

// idxName names the segment's offsets file.
func (sf *segFile) idxName() string {
	if sf.sparse {
		return sparseOffsetsName(sf.first, sf.gen)
	}
	return offsetsNameGen(sf.first, sf.gen)
}

// Open opens the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 10 * time.Second
	}
	if opts.FS == nil {
		opts.FS = vfs.OS
	}
	s := &Store{dir: dir, opts: opts, fsys: opts.FS, segs: map[uint64]*segFile{}, boot: bootID()}
	if err := s.open(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) open() error {
	if !s.opts.Create {
		f, err := s.fsys.OpenFile(join(s.dir, commitFile), os.O_RDONLY, 0)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w at %s", log.ErrNoStore, s.dir)
			}
			return err
		}
		s.commit = f
		c, err := readCommit(f)
		if err != nil {
			return err
		}
		if !s.opts.NoRecover && (c.boot != s.boot || !s.exists(join(s.dir, headsFile))) {
			// The machine rebooted since the last append (derived files
			// may have lost unsynced pages), or the heads table is gone:
			// recover under the lock, once, as the next writer would.
			if err := s.recoverAsReader(); err != nil {
				return err
			}
		}
		return s.openHeads(false)
	}
	if err := vfs.MkdirAll(s.fsys, s.dir, 0o700); err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	l, err := openLock(s.fsys, s.dir)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	s.lock = l
	f, err := s.fsys.OpenFile(join(s.dir, commitFile), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.initialize(); err != nil {
			return err
		}
		f, err = s.fsys.OpenFile(join(s.dir, commitFile), os.O_RDWR, 0)
	}
	if err != nil {
		return err
	}
	s.commit = f
	if err := s.openHeads(true); err != nil {
		return err
	}
	ids, err := openHashFile(s.fsys, join(s.dir, idsFile), idsValues, true)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, log.ErrCorrupt) {
		return err
	}
	s.ids = ids // nil if missing or corrupt: the first append rebuilds it
	return nil
}

func (s *Store) openHeads(rw bool) error {
	h, err := openHashFile(s.fsys, join(s.dir, headsFile), headsValues, rw)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, log.ErrCorrupt) {
			if rw {
				return nil // rebuilt under the lock by the first append
			}
			return fmt.Errorf("heads table: %w (run evt repair)", err)
		}
		return err
	}
	s.heads = h
	return nil
}

// initialize creates the first segment and the commit file, under the lock
// so two processes creating the same store at once do not race.
func (s *Store) initialize() error {
	if err := s.lock.acquire(context.Background(), s.opts.LockTimeout); err != nil {
		return err
	}
	defer s.lock.release()
	if _, err := s.fsys.Stat(join(s.dir, commitFile)); err == nil {
		return nil // another process won
	}
	firsts, err := listSegments(s.fsys, s.dir)
	if err != nil {
		return err
	}
	if len(firsts) == 1 && firsts[0] == 1 && s.segmentEmpty(1) {
		// The first segment holds no record: an earlier creation of the
		// store stopped before its commit file (killed, or an I/O
		// error). Nothing was ever appended; start again.
		for _, name := range []string{segmentName(1), offsetsName(1)} {
			if err := s.fsys.Remove(join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		firsts = nil
	}
	if len(firsts) > 0 {
		// Segments without a commit file: the commit file was lost, the
		// log was not. Never start afresh over it; leave a commit file
		// with no valid slot so appends refuse and evt repair rebuilds it.
		if err := vfs.WriteFile(s.fsys, join(s.dir, commitFile), make([]byte, commitSlotGap+commitSlotSize), 0o600); err != nil {
			return err
		}
		return s.fsys.SyncDir(s.dir)
	}
	now := time.Now().UnixNano()
	if err := createSegment(s.fsys, s.dir, 1, now); err != nil {
		return err
	}
	for _, t := range []struct {
		name string
		k    int
	}{{headsFile, headsValues}, {idsFile, idsValues}} {
		h, err := createHashFile(s.fsys, join(s.dir, t.name+".tmp"), t.k, 0)
		if err != nil {
			return err
		}
		err = s.fsys.Rename(h.path, join(s.dir, t.name))
		h.close()
		if err != nil {
			return err
		}
	}
	c := commitState{seq: 1, next: 1, active: 1, size: segmentHeaderSize, lastTime: now, lastSync: now, boot: s.boot}
	tmp := join(s.dir, commitFile+".tmp")
	if err := vfs.WriteFile(s.fsys, tmp, make([]byte, commitSlotGap+commitSlotSize), 0o600); err != nil {
		return err
	}
	f, err := s.fsys.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = writeCommit(f, &c)
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return err
	}
	if err := s.fsys.Rename(tmp, join(s.dir, commitFile)); err != nil {
		return err
	}
	return s.fsys.SyncDir(s.dir)
}

// segmentEmpty reports whether segment first holds no record (at most a
// header).
func (s *Store) segmentEmpty(first uint64) bool {
	st, err := s.fsys.Stat(join(s.dir, segmentName(first)))
	return err == nil && st.Size() <= segmentHeaderSize
}

// createSegment makes an empty segment and its offsets file durable.
func createSegment(fsys vfs.FS, dir string, first uint64, now int64) error {
	// O_EXCL: a segment file is never overwritten; an orphan left by a
	// killed roll is removed (roll) or adopted (recovery) first.
	f, err := fsys.OpenFile(join(dir, segmentName(first)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	_, err = f.Write(encodeSegmentHeader(first, now))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	idx, err := fsys.OpenFile(join(dir, offsetsName(first)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	idx.Close()
	return fsys.SyncDir(dir)
}

// Close releases the store's files.
func (s *Store) Close() error {
	for _, sf := range s.segs {
		sf.f.Close()
		if sf.idx != nil {
			sf.idx.Close()
		}
	}
	s.segs = map[uint64]*segFile{}
	s.lru = nil
	s.heads.close()
	s.ids.close()
	closeRuns(s.runs)
	s.runs, s.runsOf = nil, nil
	s.heads, s.ids = nil, nil
	s.closeNames()
	if s.commit != nil {
		s.commit.Close()
	}
	if s.lock != nil {
		s.lock.close()
	}
	return nil
}

// Dir is the store directory.
func (s *Store) Dir() string { return s.dir }

// segment opens (and caches) the segment whose first position is first.
func (s *Store) segment(first uint64) (*segFile, error) {
	if sf := s.segs[first]; sf != nil {
		s.touch(first)
		return sf, nil
	}
	flag := os.O_RDONLY
	if s.lock != nil {
		flag = os.O_RDWR
	}
	f, err := s.fsys.OpenFile(join(s.dir, segmentName(first)), flag, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &log.CorruptError{File: segmentName(first), Offset: -1, Reason: "segment file is missing"}
		}
		return nil, err
	}
	gen, err := checkSegmentHeader(f, first)
	if err != nil {
		f.Close()
		return nil, err
	}
	sf := &segFile{first: first, gen: gen, f: f}
	if err := s.openIdx(sf, flag); err != nil {
		f.Close()
		return nil, err
	}
	s.segs[first] = sf
	s.touch(first)
	s.evictSegments()
	return sf, nil
}

// touch makes first the most recently used segment.
func (s *Store) touch(first uint64) {
	if n := len(s.lru); n > 0 && s.lru[n-1] == first {
		return
	}
	for i, f := range s.lru {
		if f == first {
			s.lru = append(s.lru[:i], s.lru[i+1:]...)
			break
		}
	}
	s.lru = append(s.lru, first)
}

// maxOpenSegments bounds the segment files a Store keeps open, so a
// replay or a long tail -f over thousands of segments holds a constant
// number of descriptors. Eviction is least recently used.
const maxOpenSegments = 32

// evictSegments closes the least recently used segments past the bound.
func (s *Store) evictSegments() {
	for len(s.lru) > maxOpenSegments {
		first := s.lru[0]
		s.lru = s.lru[1:]
		if sf := s.segs[first]; sf != nil {
			sf.f.Close()
			if sf.idx != nil {
				sf.idx.Close()
			}
			delete(s.segs, first)
		}
	}
}

// segmentFor returns the first position of the segment holding pos.
func (s *Store) segmentFor(pos uint64, c *commitState) (uint64, error) {
	if pos >= c.active {
		return c.active, nil
	}
	if len(s.firsts) == 0 || s.firsts[len(s.firsts)-1] < c.active {
		firsts, err := listSegments(s.fsys, s.dir)
		if err != nil {
			return 0, err
		}
		s.firsts = firsts
	}
	i := sort.Search(len(s.firsts), func(i int) bool { return s.firsts[i] > pos })
	if i == 0 {
		return 0, fmt.Errorf("%w: position %d is before the first segment", log.ErrNotFound, pos)
	}
	return s.firsts[i-1], nil
}

// exists reports whether p is there.
func (s *Store) exists(p string) bool {
	_, err := s.fsys.Stat(p)
	return err == nil
}

// bootID identifies this boot of the kernel; zero where unknown.
func bootID() [16]byte {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id
	}
	h, err := hex.DecodeString(strings.ReplaceAll(string(bytes.TrimSpace(b)), "-", ""))
	if err == nil && len(h) == 16 {
		copy(id[:], h)
	}
	return id
}
