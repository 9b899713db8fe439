package natsjs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/archive/archivetest"
	"github.com/evtdev/evt/log/local/vfs"
)

// archiveWorld is a nats store whose arch-1 and arch-2 keep their newest
// 3 events under a rule that archives, plain-1 its newest 2 under one
// that does not, and keep-1 everything; envs are the envelopes of every
// event appended, by position.
type archiveWorld struct {
	ns   *server.Server
	url  string
	arch string
	envs map[uint64]string
	// archived streams, by position
	archivedStream map[uint64]bool
}

func newArchiveWorld(t *testing.T) *archiveWorld {
	t.Helper()
	w := &archiveWorld{ns: inProcessServer(t), url: "nats://in-process/ARCH", arch: filepath.Join(t.TempDir(), "a", "archive"),
		envs: map[uint64]string{}, archivedStream: map[uint64]bool{}}
	w.more(t, 10)
	s := w.open(t)
	defer s.Close()
	err := s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = append(r.Rules,
			log.Rule{Selection: "arch-*", MaxCount: 3, Archive: w.arch},
			log.Rule{Selection: "plain-*", MaxCount: 2})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *archiveWorld) open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(w.url, Options{Create: true, Dial: []nats.Option{nats.InProcessServer(w.ns)}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// more appends n events to each stream, in batches across them, and
// records their envelopes.
func (w *archiveWorld) more(t *testing.T, n int) {
	t.Helper()
	s := w.open(t)
	defer s.Close()
	for i := range n {
		var b log.Batch
		for _, stream := range []string{"arch-1", "keep-1", "arch-2", "plain-1"} {
			id := fmt.Sprintf("%s-%d-%d", stream, i, time.Now().UnixNano())
			if err := b.Add(stream, "T", id, fmt.Appendf(nil, `{"i":%d,"s":"%s"}`, i, stream), []byte(`{"m":1}`)); err != nil {
				t.Fatal(err)
			}
		}
		res, err := s.Append(context.Background(), &b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			rec := w.stored(t, s, r.Position)
			w.envs[r.Position] = string(codec.AppendRecordJSON(nil, rec))
			w.archivedStream[r.Position] = strings.HasPrefix(r.Stream, "arch-")
		}
	}
}

// stored reads the record at position p from the server, retention
// aside; nil when it is not there (purged).
func (w *archiveWorld) stored(t *testing.T, s *Store, p uint64) *codec.Record {
	t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	m, err := s.getMsg(ctx, msgGetRequest{Seq: p})
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		return nil
	}
	e, ok := s.decode(m.Subject, m.Seq, m.Header, m.Data, m.Time)
	if !ok {
		t.Fatalf("message %d is not evt's", p)
	}
	var rec codec.Record
	e.record(&rec)
	return &rec
}

// check: every event is on the server or archived, none archived twice,
// each archived envelope byte for byte what it was, only events of
// archived streams archived; with complete (after a compaction that
// succeeded), every event of an archived stream that is gone is archived
// and nothing temporary is left.
func (w *archiveWorld) check(t *testing.T, complete bool) {
	t.Helper()
	s := w.open(t)
	defer s.Close()
	arch := archivetest.Read(t, w.arch, complete)
	gone := 0
	for pos, env := range w.envs {
		a := arch[pos]
		archivetest.Once(t, pos, env, a)
		if len(a) > 0 && !w.archivedStream[pos] {
			t.Errorf("position %d archived, its stream has no archive rule", pos)
		}
		if w.stored(t, s, pos) != nil {
			continue
		}
		gone++
		if w.archivedStream[pos] && len(a) == 0 {
			t.Errorf("position %d is gone and not archived", pos)
		}
	}
	if complete && gone == 0 {
		t.Errorf("nothing was purged")
	}
}

func (w *archiveWorld) compact(t *testing.T, hooks compactHooks) error {
	t.Helper()
	s := w.open(t)
	defer s.Close()
	s.hooks = hooks
	_, err := s.Compact(context.Background(), nil)
	return err
}

// failFS fails one kind of operation on the archive with EIO.
type failFS struct {
	vfs.FS
	op string // "sync" (the archive file's), "rename", "syncdir", "mkdir"
}

var errEIO = syscall.EIO

func (f failFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil || f.op != "sync" {
		return file, err
	}
	return failSync{file}, nil
}

func (f failFS) Rename(oldpath, newpath string) error {
	if f.op == "rename" {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: errEIO}
	}
	return f.FS.Rename(oldpath, newpath)
}

func (f failFS) SyncDir(name string) error {
	if f.op == "syncdir" && filepath.Base(name) == "archive" {
		return &fs.PathError{Op: "sync", Path: name, Err: errEIO}
	}
	return f.FS.SyncDir(name)
}

func (f failFS) Mkdir(name string, perm fs.FileMode) error {
	if f.op == "mkdir" {
		return &fs.PathError{Op: "mkdir", Path: name, Err: errEIO}
	}
	return f.FS.Mkdir(name, perm)
}

type failSync struct{ vfs.File }

func (f failSync) Sync() error { return &fs.PathError{Op: "sync", Path: f.Name(), Err: errEIO} }

var errCrash = errors.New("crash")

// TestCompactArchiveFaults: a nats store's compaction stopped by a crash
// before each purge (after the archive is complete: before the first
// purge, between two, before the last) or by a failed write of the
// archive (the file's sync, its rename, the directory's sync, making the
// directory), then a clean retry after more appends (so it removes more
// than the stopped one would have). Every event is on the server or
// archived, nothing archived twice, each archived envelope byte for byte
// the event, and after the retry everything removed of an archived
// stream is archived.
func TestCompactArchiveFaults(t *testing.T) {
	crashAt := func(n int) compactHooks {
		return compactHooks{beforePurge: func(i int) error {
			if i == n {
				return errCrash
			}
			return nil
		}}
	}
	for _, c := range []struct {
		name    string
		hooks   compactHooks
		archive bool // the failure is the archive's: its error names it
	}{
		{"crash before the first purge", crashAt(0), false},
		{"crash between two purges", crashAt(1), false},
		{"crash before the last purge", crashAt(2), false},
		{"archive file sync fails", compactHooks{fsys: failFS{vfs.OS, "sync"}}, true},
		{"archive rename fails", compactHooks{fsys: failFS{vfs.OS, "rename"}}, true},
		{"archive directory sync fails", compactHooks{fsys: failFS{vfs.OS, "syncdir"}}, true},
		{"archive mkdir fails", compactHooks{fsys: failFS{vfs.OS, "mkdir"}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newArchiveWorld(t)
			err := w.compact(t, c.hooks)
			if err == nil {
				t.Fatal("compaction succeeded despite the fault")
			}
			if c.archive && !strings.Contains(err.Error(), "archive to "+w.arch) {
				t.Errorf("error does not name the archive: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if c.archive {
				// Nothing purged: an archive that is not durable
				// reclaims nothing.
				s := w.open(t)
				for pos := range w.envs {
					if w.stored(t, s, pos) == nil {
						t.Errorf("position %d purged though the archive failed", pos)
					}
				}
				s.Close()
			}
			w.check(t, false)
			w.more(t, 4)
			if err := w.compact(t, compactHooks{}); err != nil {
				t.Fatalf("retry: %v", err)
			}
			w.check(t, true)
			// Reads show each stream's newest events, and the versions
			// went on.
			s := w.open(t)
			defer s.Close()
			for stream, keep := range map[string]uint64{"arch-1": 3, "plain-1": 2, "keep-1": 14} {
				h, err := s.Head(stream)
				if err != nil || h.Version != 14 {
					t.Fatalf("head of %s: %+v, %v; want version 14", stream, h, err)
				}
				sel, _ := codec.ParseSelection(stream)
				n := uint64(0)
				for _, err := range s.Read(context.Background(), log.Query{Selection: sel}) {
					if err != nil {
						t.Fatal(err)
					}
					n++
				}
				if n != keep {
					t.Errorf("%s reads %d events, want %d", stream, n, keep)
				}
			}
		})
	}
}
