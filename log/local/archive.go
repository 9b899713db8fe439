package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log/archive"
	"github.com/evtdev/evt/log/local/vfs"
)

// Archives: a retention rule with an archive directory (log.Rule.Archive)
// makes compaction write what it is about to reclaim of the rule's
// streams to that directory first, as one compressed file of envelopes
// per compaction and directory (log/archive), complete and synced (file
// and directory) before the first segment is touched.
//
// A crash between the archive and the reclaim leaves the events in the
// segments and in a complete archive file. The next compaction finds
// them again; it reads the archive files whose position range overlaps
// the log and leaves out every event one of them already holds, so an
// event is archived once, and is in an archive before it is gone. A crash
// while the file is written leaves only a temporary file (renamed into
// place once whole), which the next compaction removes.

// archiveDir is the archive directory of the rule that archives rec, or
// "" when rec is not to be archived: a marker, an event a cut removed
// (delete and truncate remove on purpose), or one no archive rule's
// selection matches. Called only for records compaction drops.
func (v *view) archiveDir(rec *codec.Record) string {
	if rec.Marker() || len(rec.Stream) == 0 {
		return ""
	}
	name := unsafe.String(&rec.Stream[0], len(rec.Stream))
	if _, cutOff := v.head(name, rec); cutOff {
		return ""
	}
	matches := v.matching(name)
	for i := range v.rules {
		r := &v.rules[i]
		if r.archive == "" || i < 64 && matches&(1<<i) == 0 || i >= 64 && !r.sel.Match(name) {
			continue
		}
		return r.archive
	}
	return ""
}

// archiveRemoved archives what compaction will drop from the sealed
// segments (the same decision as compactSegment's: !keeps) of streams
// an archive rule matches. It returns once every archive file is synced;
// an error, or ctx done, leaves no new archive file and nothing
// reclaimed.
func (s *Store) archiveRemoved(ctx context.Context, c *commitState, v *view, h *hashFile, sealed []uint64) error {
	if len(sealed) == 0 || !v.archives() {
		return nil
	}
	archivers := map[string]*archiver{}
	defer func() {
		for _, a := range archivers {
			a.abort()
		}
	}()
	n := 0
	for _, first := range sealed {
		sf, err := s.segment(first)
		if err != nil {
			return err
		}
		lim, err := s.limit(sf, c)
		if err != nil {
			return err
		}
		sc := newRecordScanner(sf.f, segmentName(first), segmentHeaderSize, lim, s.scanBuf)
		for sc.Next() {
			if n++; n%16384 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			rec := sc.Record()
			if rec.Marker() || s.keeps(rec, v, h) {
				continue
			}
			dir := v.archiveDir(rec)
			if dir == "" {
				continue
			}
			a := archivers[dir]
			if a == nil {
				if a, err = s.openArchiver(dir, sealed[0]); err != nil {
					return err
				}
				archivers[dir] = a
			}
			if err := a.add(rec); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
		s.scanBuf = sc.buf
	}
	dirs := make([]string, 0, len(archivers))
	for dir := range archivers {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		if err := archivers[dir].finish(); err != nil {
			return err
		}
	}
	return nil
}

// archives reports whether any rule has an archive directory.
func (v *view) archives() bool {
	for i := range v.rules {
		if v.rules[i].archive != "" {
			return true
		}
	}
	return false
}

// archiver writes one compaction's archive file in one directory.
type archiver struct {
	fsys vfs.FS
	dir  string
	// files are the complete archive files that may hold events still
	// in the log (their last position is at or after its start).
	files []archiveFile
	tmp   vfs.File
	path  string // of tmp
	w     *bufio.Writer
	zw    io.WriteCloser
	lo    uint64 // first and last position written; lo == 0: none yet
	hi    uint64
	buf   []byte
	done  bool
}

// archiveFile is a complete archive file and, once read, the positions
// it holds.
type archiveFile struct {
	name   string
	lo, hi uint64
	ids    map[uint64]string // position → event id; nil until needed
}

// openArchiver prepares dir (creating it) for an archive of events at or
// after position from: it removes what a killed compaction left there
// and lists the files that may already hold some of them.
func (s *Store) openArchiver(dir string, from uint64) (*archiver, error) {
	a := &archiver{fsys: s.fsys, dir: dir}
	if err := mkdirAll(s.fsys, dir); err != nil {
		return nil, a.errorf("%w", err)
	}
	ents, err := s.fsys.ReadDir(dir)
	if err != nil {
		return nil, a.errorf("%w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, archive.TempPrefix) {
			if err := s.fsys.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, a.errorf("%w", err)
			}
			continue
		}
		if lo, hi, ok := archive.ParseName(name); ok && hi >= from {
			a.files = append(a.files, archiveFile{name: name, lo: lo, hi: hi})
		}
	}
	return a, nil
}

// errorf is an error of this archive, in one line that names it.
func (a *archiver) errorf(format string, args ...any) error {
	return fmt.Errorf("archive to %s: %w", a.dir, fmt.Errorf(format, args...))
}

// add writes rec's envelope, unless an earlier archive file holds it.
func (a *archiver) add(rec *codec.Record) error {
	held, err := a.archived(rec)
	if err != nil || held {
		return err
	}
	if a.tmp == nil {
		a.path = filepath.Join(a.dir, fmt.Sprintf("%s%d-%d", archive.TempPrefix, os.Getpid(), rec.Position))
		f, err := a.fsys.OpenFile(a.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return a.errorf("%w", err)
		}
		a.tmp = f
		if a.zw, err = archive.NewWriter(f); err != nil {
			return a.errorf("%w", err)
		}
		a.w = bufio.NewWriterSize(a.zw, 256<<10)
		a.lo = rec.Position
	}
	a.hi = rec.Position
	a.buf = codec.AppendRecordJSON(a.buf[:0], rec)
	a.buf = append(a.buf, '\n')
	if _, err := a.w.Write(a.buf); err != nil {
		return a.errorf("%w", err)
	}
	return nil
}

// archived reports whether a complete archive file holds rec: its
// position with its id. The same position with another id is another
// store's event (two stores given one archive directory): that is an
// error, not a reason to skip rec, which would then be reclaimed without
// being archived.
func (a *archiver) archived(rec *codec.Record) (bool, error) {
	p := rec.Position
	for i := range a.files {
		f := &a.files[i]
		if p < f.lo || p > f.hi {
			continue
		}
		if f.ids == nil {
			ids, err := a.readIDs(f.name)
			if err != nil {
				return false, err
			}
			f.ids = ids
		}
		id, ok := f.ids[p]
		if !ok {
			continue
		}
		if id != string(rec.ID) {
			return false, a.errorf("%s holds another event at position %d: is it another store's archive directory? give each store its own", f.name, p)
		}
		return true, nil
	}
	return false, nil
}

// readIDs reads the positions and ids of the envelopes in an archive
// file.
func (a *archiver) readIDs(name string) (map[uint64]string, error) {
	f, err := a.fsys.OpenFile(filepath.Join(a.dir, name), os.O_RDONLY, 0)
	if err != nil {
		return nil, a.errorf("%w", err)
	}
	defer f.Close()
	r, _, closeR, err := archive.Decompress(f)
	if err != nil {
		return nil, a.errorf("%s: %w", name, err)
	}
	defer closeR()
	ids := map[uint64]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		var env struct {
			Position uint64 `json:"position"`
			ID       string `json:"id"`
		}
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil || env.Position == 0 {
			return nil, a.errorf("%s: line %d is not an envelope with a position", name, line)
		}
		ids[env.Position] = env.ID
	}
	if err := sc.Err(); err != nil {
		return nil, a.errorf("%s: %w", name, err)
	}
	return ids, nil
}

// finish makes the archive file complete and durable under its final
// name: compressed stream closed, file synced, renamed, directory
// synced. With nothing written (everything was archived already) there
// is no file.
func (a *archiver) finish() error {
	if a.tmp == nil {
		return nil
	}
	if err := a.w.Flush(); err != nil {
		return a.errorf("%w", err)
	}
	if err := a.zw.Close(); err != nil {
		return a.errorf("%w", err)
	}
	if err := a.tmp.Sync(); err != nil {
		return a.errorf("%w", err)
	}
	if err := a.tmp.Close(); err != nil {
		return a.errorf("%w", err)
	}
	a.tmp = nil
	final := filepath.Join(a.dir, archive.Name(a.lo, a.hi))
	// Never over another file of that name: this store's own would have
	// held these events (archived would have skipped them), so it is
	// another store's, and renaming over it would lose that store's
	// events.
	if _, err := a.fsys.Stat(final); err == nil {
		return a.errorf("%s exists with other events: is it another store's archive directory? give each store its own", archive.Name(a.lo, a.hi))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return a.errorf("%w", err)
	}
	if err := a.fsys.Rename(a.path, final); err != nil {
		return a.errorf("%w", err)
	}
	a.done = true
	if err := a.fsys.SyncDir(a.dir); err != nil {
		return a.errorf("%w", err)
	}
	return nil
}

// abort removes an unfinished archive file.
func (a *archiver) abort() {
	if a.tmp != nil {
		a.tmp.Close()
		a.tmp = nil
	}
	if a.path != "" && !a.done {
		a.fsys.Remove(a.path)
	}
}

// mkdirAll creates dir and its missing parents, syncing each parent
// that gained an entry.
func mkdirAll(fsys vfs.FS, dir string) error {
	st, err := fsys.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(fsys, parent); err != nil {
			return err
		}
	}
	if err := fsys.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return fsys.SyncDir(parent)
}
