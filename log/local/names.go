package local

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"

	"syscall"

	"golang.org/x/sys/unix"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/atomicfile"
	"github.com/evtdev/evt/log/local/vfs"
)

// The name index answers "which streams start with acc" without reading
// a record per stream (the heads table is keyed by hashes of the names,
// so it cannot): shell completion on a store of a million streams.
//
// It is derived (invariant 1) and a superset: every stream that has an
// event has its name in it; a name may outlive its stream (deleted,
// truncated, expired, or written by an append that a crash undid).
// Stream names hold no control characters, so the files are plain text,
// one name a line, in levels as a log-structured merge tree keeps them:
//
//	names      sorted, each name once; replaced whole (write and rename)
//	names.1    the same, at most an eighth of names' size
//	names.log  names of streams created since, in creation order,
//	           at most namesLogMax bytes
//
// Writers, under the append lock, add the names of the streams a batch
// creates to names.log before the batch is complete on disk, so no
// committed stream is ever missing; a torn last line (a crash mid-write)
// is cut off by the next writer. After a commit, a names.log past
// namesLogMax is merged into names.1, and a names.1 past an eighth of
// names into names: each merge first renames the merged file into
// place, then empties the level it took in (names.1 is replaced by an
// empty file, never truncated: readers map it). A reader reads the
// levels smallest first, so each name is either in a level it read or in
// the bigger one it read after. Each name is rewritten O(log) times, and
// a lookup sorts at most namesLogMax bytes of names.
//
// names.log is synced with the other tables when a segment is sealed;
// after a reboot the first writer adds again the streams created in the
// active segment (their version-1 events), which a lost page could have
// dropped. A rebuild of the tables (repair) rewrites the levels from the
// heads; a store made before the index existed gets it from its first
// writer that creates a stream, and until then lookups report
// log.ErrUnsupported.
const (
	namesFile    = "names"
	names1File   = "names.1"
	namesLogFile = "names.log"
	namesLogMax  = 64 << 10
	// names1Min is the size of names.1 below which it is not merged
	// into names however small names is.
	names1Min = 256 << 10
)

// nameIndex is a reader's view of the files, each reloaded when it
// changes.
type nameIndex struct {
	levels [2]sortedNames // names.1, names
	tail   []string       // names.log, sorted and deduplicated
	tailID [3]int64       // inode, size and mtime of names.log when read
}

// sortedNames is one mapped level.
type sortedNames struct {
	data []byte
	id   [3]int64
}

// fileID tells one version of a file from the next: a level replaced by
// a rename has a new inode, names.log grows or is emptied.
func fileID(fi fs.FileInfo) [3]int64 {
	var ino int64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = int64(st.Ino)
	}
	return [3]int64{ino, fi.Size(), fi.ModTime().UnixNano()}
}

// StreamNames returns up to limit names, in byte order, that start with
// prefix and are at or after from, read from the name index (see
// log.StreamNamer for the contract).
func (s *Store) StreamNames(prefix, from string, limit int) ([]string, error) {
	if from < prefix {
		from = prefix
	}
	if err := s.loadNames(); err != nil {
		return nil, err
	}
	ix := s.names
	var offs [2]int
	for i := range ix.levels {
		offs[i] = firstLineAtOrAfter(ix.levels[i].data, from)
	}
	t := sort.SearchStrings(ix.tail, from)
	out := make([]string, 0, min(limit, 64))
	for len(out) < limit {
		// The smallest of the three heads that still has the prefix.
		name, ok := "", false
		for i := range ix.levels {
			if l, has := lineAt(ix.levels[i].data, offs[i]); has && strings.HasPrefix(l, prefix) && (!ok || l < name) {
				name, ok = l, true
			}
		}
		if t < len(ix.tail) && strings.HasPrefix(ix.tail[t], prefix) && (!ok || ix.tail[t] < name) {
			name, ok = ix.tail[t], true
		}
		if !ok {
			break
		}
		for i := range ix.levels {
			if l, has := lineAt(ix.levels[i].data, offs[i]); has && l == name {
				offs[i] += len(l) + 1
			}
		}
		if t < len(ix.tail) && ix.tail[t] == name {
			t++
		}
		out = append(out, name)
	}
	return out, nil
}

// lineAt returns the line that starts at off in b, if any.
func lineAt(b []byte, off int) (string, bool) {
	if off >= len(b) {
		return "", false
	}
	end := bytes.IndexByte(b[off:], '\n')
	return string(b[off : off+end]), true // levels end with a newline
}

// loadNames (re)loads the files that changed since the last lookup,
// smallest level first (see the comment on namesFile).
func (s *Store) loadNames() error {
	if s.names == nil {
		s.names = &nameIndex{}
	}
	ix := s.names
	logPath := join(s.dir, namesLogFile)
	var logData []byte
	var logID [3]int64
	fi, err := s.fsys.Stat(logPath)
	switch {
	case err == nil:
		logID = fileID(fi)
		if logID != ix.tailID {
			if logData, err = vfs.ReadFile(s.fsys, logPath); err != nil {
				return err
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	for i, name := range []string{names1File, namesFile} {
		fi, err := s.fsys.Stat(join(s.dir, name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && name == namesFile {
				return fmt.Errorf("%w: the name index is not built yet", log.ErrUnsupported)
			}
			if errors.Is(err, fs.ErrNotExist) {
				ix.levels[i].unmap()
				continue
			}
			return err
		}
		if fileID(fi) != ix.levels[i].id {
			if err := ix.levels[i].mapFile(s.fsys, join(s.dir, name)); err != nil {
				return err
			}
			ix.levels[i].id = fileID(fi)
		}
	}
	if logID != ix.tailID {
		ix.tail = parseNameLines(logData)
		ix.tailID = logID
	}
	return nil
}

// mapFile maps a level. A level is replaced, never changed in place, so
// the mapping stays valid; a torn last line cannot occur (it is renamed
// whole), but one is cut off rather than trusted.
func (l *sortedNames) mapFile(fsys vfs.FS, path string) error {
	l.unmap()
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map %s: %w", baseName(path), err)
	}
	l.data = mem[:bytes.LastIndexByte(mem, '\n')+1]
	return nil
}

func (l *sortedNames) unmap() {
	if l.data != nil {
		unix.Munmap(l.data[:cap(l.data)])
	}
	l.data, l.id = nil, [3]int64{}
}

// parseNameLines returns the complete lines of b, sorted, each once.
func parseNameLines(b []byte) []string {
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else {
		return nil
	}
	names := strings.Split(string(b), "\n")
	sort.Strings(names)
	return slices.Compact(names)
}

// firstLineAtOrAfter returns the offset of the first line of the sorted
// lines in b that is at or after key (len(b) if none): a binary search
// over byte offsets, as look(1) does, that lands on line starts.
func firstLineAtOrAfter(b []byte, key string) int {
	lo, hi := 0, len(b) // lines starting before lo are < key; the line at hi (if any) is ≥ key
	for lo < hi {
		mid := lo + (hi-lo)/2
		s := mid
		if s > 0 && b[s-1] != '\n' {
			j := bytes.IndexByte(b[s:], '\n')
			if j < 0 {
				s = len(b)
			} else {
				s += j + 1
			}
		}
		if s >= hi {
			// No line starts in [mid, hi): decide the line at lo.
			end := lo + bytes.IndexByte(b[lo:], '\n')
			if string(b[lo:end]) >= key {
				return lo
			}
			lo = end + 1
			continue
		}
		end := s + bytes.IndexByte(b[s:], '\n')
		if string(b[s:end]) < key {
			lo = end + 1
		} else {
			hi = s
		}
	}
	return lo
}

// noteNames adds the names of streams a batch creates to names.log. It
// runs under the append lock, before the batch is written. Building the
// index of a store that has none comes first (once per process). The
// file is opened for appending, and its end checked for a torn line each
// time, because other processes append to it between our batches.
func (s *Store) noteNames(names []string) error {
	if len(names) == 0 {
		return nil
	}
	if s.namesLog == nil {
		if !s.exists(join(s.dir, namesFile)) {
			c, err := s.committed()
			if err != nil {
				return err
			}
			if err := s.rebuildNames(&c); err != nil {
				return err
			}
		}
		f, err := s.fsys.OpenFile(join(s.dir, namesLogFile), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		s.namesLog = f
	}
	st, err := s.namesLog.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size > 0 {
		var last [1]byte
		if _, err := s.namesLog.ReadAt(last[:], size-1); err != nil {
			return fmt.Errorf("read %s: %w", namesLogFile, err)
		}
		if last[0] != '\n' {
			if size, err = cutTornLine(s.namesLog, size); err != nil {
				return fmt.Errorf("repair %s: %w", namesLogFile, err)
			}
		}
	}
	var b []byte
	for _, n := range names {
		b = append(append(b, n...), '\n')
	}
	if _, err := s.namesLog.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", namesLogFile, err)
	}
	s.namesLogSize = size + int64(len(b))
	return nil
}

// cutTornLine truncates f (of size bytes) after its last newline.
func cutTornLine(f vfs.File, size int64) (int64, error) {
	buf := make([]byte, min(size, 4096))
	_, err := f.ReadAt(buf, size-int64(len(buf)))
	if err != nil {
		return 0, err
	}
	keep := int64(0)
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		keep = size - int64(len(buf)) + int64(i) + 1
	} else if size > int64(len(buf)) {
		return 0, errors.New("a line longer than any stream name")
	}
	return keep, f.Truncate(keep)
}

// maybeMergeNames merges the levels that have outgrown theirs (see
// namesFile). It runs under the append lock after a commit; a failure
// loses nothing (each name stays in the level it was in), so it is not
// reported: the next writer tries again.
func (s *Store) maybeMergeNames() {
	if s.namesLog == nil || s.namesLogSize < namesLogMax {
		return
	}
	_ = s.mergeNames()
}

func (s *Store) mergeNames() error {
	added, err := vfs.ReadFile(s.fsys, join(s.dir, namesLogFile))
	if err != nil {
		return err
	}
	level1, err := s.readLevel(names1File)
	if err != nil {
		return err
	}
	level1 = mergeSorted(level1, parseNameLines(added))
	if err := atomicfile.WriteFS(s.fsys, join(s.dir, names1File), level1, 0o600); err != nil {
		return err
	}
	s.namesLogSize = 0
	if err := s.namesLog.Truncate(0); err != nil {
		return err
	}
	st, err := s.fsys.Stat(join(s.dir, namesFile))
	if err != nil || len(level1) < names1Min || int64(len(level1))*8 < st.Size() {
		return err
	}
	level0, err := s.readLevel(namesFile)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFS(s.fsys, join(s.dir, namesFile), mergeSorted(level0, parseNameLines(level1)), 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFS(s.fsys, join(s.dir, names1File), nil, 0o600)
}

// readLevel reads a level; a missing one is empty.
func (s *Store) readLevel(name string) ([]byte, error) {
	b, err := vfs.ReadFile(s.fsys, join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// mergeSorted returns the lines of the sorted level old and the sorted
// names, in order, each once.
func mergeSorted(old []byte, names []string) []byte {
	merged := make([]byte, 0, len(old)+len(names)*16)
	for len(old) > 0 || len(names) > 0 {
		var a string
		if len(old) > 0 {
			a = string(old[:bytes.IndexByte(old, '\n')])
		}
		switch {
		case len(names) == 0 || len(old) > 0 && a < names[0]:
			old = old[len(a)+1:]
		case len(old) > 0 && a == names[0]:
			old, names = old[len(a)+1:], names[1:]
		default:
			a, names = names[0], names[1:]
		}
		merged = append(append(merged, a...), '\n')
	}
	return merged
}

// rebuildNames writes names from the heads table (one record read per
// stream, in log order) and empties names.log. It runs under the append
// lock: after a rebuild of the tables, or once for a store made before the
// index existed.
func (s *Store) rebuildNames(c *commitState) error {
	var lasts []uint64
	s.heads.each(func(_ hashKey, vals []uint64) bool {
		if vals[0] < c.next {
			lasts = append(lasts, vals[0])
		}
		return true
	})
	slices.Sort(lasts)
	names := make([]string, 0, len(lasts))
	for _, pos := range lasts {
		rec, err := s.recordAt(pos, c)
		if err != nil {
			return fmt.Errorf("rebuild %s: %w", namesFile, err)
		}
		names = append(names, string(rec.Stream))
	}
	sort.Strings(names)
	names = slices.Compact(names)
	var b []byte
	for _, n := range names {
		b = append(append(b, n...), '\n')
	}
	if err := atomicfile.WriteFS(s.fsys, join(s.dir, namesFile), b, 0o600); err != nil {
		return fmt.Errorf("rebuild %s: %w", namesFile, err)
	}
	if err := atomicfile.WriteFS(s.fsys, join(s.dir, names1File), nil, 0o600); err != nil {
		return fmt.Errorf("rebuild %s: %w", names1File, err)
	}
	s.namesLogSize = 0
	if s.namesLog != nil {
		return s.namesLog.Truncate(0)
	}
	f, err := s.fsys.OpenFile(join(s.dir, namesLogFile), os.O_WRONLY|os.O_TRUNC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// noteCreated adds rec's stream to names.log when rec is its stream's
// first event (recovery after a reboot re-adds what a lost page of
// names.log may have dropped; duplicates are harmless).
func (s *Store) noteCreated(rec *codec.Record) error {
	if rec.Version != 1 || rec.Marker() {
		return nil
	}
	return s.noteNames([]string{string(rec.Stream)})
}

// syncNames syncs names.log (when a segment is sealed).
func (s *Store) syncNames() error {
	if s.namesLog == nil {
		return nil
	}
	return s.namesLog.Sync()
}

// closeNames releases the index's files.
func (s *Store) closeNames() {
	if s.names != nil {
		for i := range s.names.levels {
			s.names.levels[i].unmap()
		}
		s.names = nil
	}
	if s.namesLog != nil {
		s.namesLog.Close()
		s.namesLog = nil
	}
}
