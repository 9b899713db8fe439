package archive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log/local/vfs"
)

// Writing an archive is the same for every store: the local store
// archives what its compaction is about to drop from sealed segments, a
// nats store what its compaction is about to purge. The file is complete
// and synced (file and directory) before the store removes anything.
//
// A crash between the archive and the removal leaves the events in the
// store and in a complete archive file. The next compaction finds them
// again; its Writer reads the archive files whose position range
// overlaps what it archives and leaves out every event one of them
// already holds, so an event is archived once, and is in an archive
// before it is gone. A crash while the file is written leaves only a
// temporary file (renamed into place once whole), which the next Writer
// for the directory removes.

// Writer writes one compaction's archive file in one directory. Events
// are added in position order.
type Writer struct {
	fsys vfs.FS
	dir  string
	// files are the complete archive files that may hold events still
	// in the store (their last position is at or after its start).
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

// Open prepares dir (creating it and its parents, synced) for an archive
// of events at or after position from: it removes what a killed
// compaction left there and lists the files that may already hold some
// of them. fsys is the file system (vfs.OS, or a fault-injecting one in
// tests).
func Open(fsys vfs.FS, dir string, from uint64) (*Writer, error) {
	a := &Writer{fsys: fsys, dir: dir}
	if err := mkdirAll(fsys, dir); err != nil {
		return nil, a.errorf("%w", err)
	}
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, a.errorf("%w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, TempPrefix) {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, a.errorf("%w", err)
			}
			continue
		}
		if lo, hi, ok := ParseName(name); ok && hi >= from {
			a.files = append(a.files, archiveFile{name: name, lo: lo, hi: hi})
		}
	}
	return a, nil
}

// errorf is an error of this archive, in one line that names it.
func (a *Writer) errorf(format string, args ...any) error {
	return fmt.Errorf("archive to %s: %w", a.dir, fmt.Errorf(format, args...))
}

// Add writes rec's envelope, unless an earlier archive file holds it.
// Positions must increase from one Add to the next.
func (a *Writer) Add(rec *codec.Record) error {
	held, err := a.archived(rec)
	if err != nil || held {
		return err
	}
	if a.tmp == nil {
		a.path = filepath.Join(a.dir, fmt.Sprintf("%s%d-%d", TempPrefix, os.Getpid(), rec.Position))
		f, err := a.fsys.OpenFile(a.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return a.errorf("%w", err)
		}
		a.tmp = f
		if a.zw, err = NewWriter(f); err != nil {
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
// error, not a reason to skip rec, which would then be removed without
// being archived.
func (a *Writer) archived(rec *codec.Record) (bool, error) {
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
func (a *Writer) readIDs(name string) (map[uint64]string, error) {
	f, err := a.fsys.OpenFile(filepath.Join(a.dir, name), os.O_RDONLY, 0)
	if err != nil {
		return nil, a.errorf("%w", err)
	}
	defer f.Close()
	r, _, closeR, err := Decompress(f)
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

// Finish makes the archive file complete and durable under its final
// name: compressed stream closed, file synced, renamed, directory
// synced. With nothing written (everything was archived already) there
// is no file.
func (a *Writer) Finish() error {
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
	final := filepath.Join(a.dir, Name(a.lo, a.hi))
	// Never over another file of that name: this store's own would have
	// held these events (archived would have skipped them), so it is
	// another store's, and renaming over it would lose that store's
	// events.
	if _, err := a.fsys.Stat(final); err == nil {
		return a.errorf("%s exists with other events: is it another store's archive directory? give each store its own", Name(a.lo, a.hi))
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

// Abort removes an unfinished archive file (a no-op after Finish).
func (a *Writer) Abort() {
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

// Set is one compaction's archives: a Writer per directory, opened on
// the first event for it.
type Set struct {
	fsys    vfs.FS
	from    uint64
	writers map[string]*Writer
}

// NewSet starts the archives of a compaction of events at or after
// position from (see Open).
func NewSet(fsys vfs.FS, from uint64) *Set {
	return &Set{fsys: fsys, from: from, writers: map[string]*Writer{}}
}

// Add writes rec to the archive in dir (Writer.Add).
func (s *Set) Add(dir string, rec *codec.Record) error {
	w := s.writers[dir]
	if w == nil {
		var err error
		if w, err = Open(s.fsys, dir, s.from); err != nil {
			return err
		}
		s.writers[dir] = w
	}
	return w.Add(rec)
}

// Finish finishes every archive, in the order of their directories; once
// it returns nil, every file is complete and durable.
func (s *Set) Finish() error {
	dirs := make([]string, 0, len(s.writers))
	for dir := range s.writers {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		if err := s.writers[dir].Finish(); err != nil {
			return err
		}
	}
	return nil
}

// Abort removes every unfinished archive file (Writer.Abort).
func (s *Set) Abort() {
	for _, w := range s.writers {
		w.Abort()
	}
}
