package local

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/evtdev/evt/log/local/vfs"
)

// faultFS is the store's file-system seam over a real directory, with
// faults. It logs every operation (for ordering checks and to enumerate
// the operations a writer makes) and fails the ones its rule picks:
//
//   - an errno (ENOSPC, EIO) from open, write, sync, rename, remove,
//     mkdir, truncate, allocate or a directory sync;
//   - a short write: half the bytes reach the file, then the errno;
//   - a failed fsync, after which the file holds only what it held at its
//     last successful sync (the kernel may drop the dirty pages of a file
//     whose writeback failed and mark them clean, so a retried fsync
//     "succeeds"; PostgreSQL learned this in 2018). A store that trusted
//     its page cache, or retried the sync, would acknowledge lost data;
//   - a torn rename: the rename happens, then the call fails (the caller
//     cannot tell whether the new name is in place);
//   - a crash: the picked operation and every one after it fail, as if
//     the process was killed there. What reached the files before stays
//     (the page cache survives a kill -9).
//
// What goes through the descriptor (flock, the mapped tables' stores,
// copy_file_range) is not seen; syncs of the mapped tables are.
type faultFS struct {
	mu      sync.Mutex
	ops     []string // "op base-name", in order
	rule    faultRule
	seen    int // operations the rule matched so far
	fired   string
	crashed bool
	// synced is each file's content as of its last successful sync (or
	// when it was first opened through this FS), for failed syncs.
	synced map[string][]byte
}

// faultRule picks the nth operation (1-based) of kind op on a file whose
// base name matches file (a filepath.Match pattern; "" is any), or, with
// op "", the nth operation of any kind.
type faultRule struct {
	op, file string
	nth      int
	err      error // syscall.ENOSPC, syscall.EIO, or errCrash
	short    bool  // a write writes half, then fails
	torn     bool  // a rename renames, then fails
}

// errCrash is the error of every operation from a crash on.
var errCrash = errors.New("simulated crash")

func newFaultFS(r faultRule) *faultFS { return &faultFS{rule: r, synced: map[string][]byte{}} }

// check logs an operation and returns the fault to inject, if any.
func (f *faultFS) check(op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	base := filepath.Base(name)
	f.ops = append(f.ops, op+" "+base)
	if f.crashed {
		return errCrash
	}
	if f.rule.nth == 0 || f.fired != "" {
		return nil
	}
	if f.rule.op != "" && f.rule.op != op {
		return nil
	}
	if f.rule.file != "" {
		if ok, _ := filepath.Match(f.rule.file, base); !ok {
			return nil
		}
	}
	f.seen++
	if f.seen != f.rule.nth {
		return nil
	}
	f.fired = op + " " + base
	if f.rule.err == errCrash {
		f.crashed = true
	}
	return f.rule.err
}

// log returns the operations so far.
func (f *faultFS) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ops...)
}

func pathErr(op, name string, err error) error {
	if err == errCrash {
		return err
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (f *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	if err := f.check("open", name); err != nil {
		return nil, pathErr("open", name, err)
	}
	file, err := vfs.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if _, ok := f.synced[name]; !ok {
		if b, err := os.ReadFile(name); err == nil {
			f.synced[name] = b
		}
	}
	f.mu.Unlock()
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.check("rename", newpath); err != nil {
		if f.rule.torn && err != errCrash {
			if rerr := os.Rename(oldpath, newpath); rerr == nil {
				f.mu.Lock()
				f.synced[newpath] = f.synced[oldpath]
				f.mu.Unlock()
			}
		}
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	f.mu.Lock()
	f.synced[newpath] = f.synced[oldpath]
	f.mu.Unlock()
	return nil
}

func (f *faultFS) Remove(name string) error {
	if err := f.check("remove", name); err != nil {
		return pathErr("remove", name, err)
	}
	return os.Remove(name)
}

func (f *faultFS) Mkdir(name string, perm fs.FileMode) error {
	if err := f.check("mkdir", name); err != nil {
		return pathErr("mkdir", name, err)
	}
	return os.Mkdir(name, perm)
}

// ReadDir and Stat only read; a crash fails them too (nothing runs after
// a kill).
func (f *faultFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := f.check("readdir", name); err != nil {
		return nil, pathErr("readdir", name, err)
	}
	return os.ReadDir(name)
}

func (f *faultFS) Stat(name string) (fs.FileInfo, error) {
	if err := f.check("stat", name); err != nil {
		return nil, pathErr("stat", name, err)
	}
	return os.Stat(name)
}

func (f *faultFS) SyncDir(name string) error {
	if err := f.check("syncdir", name); err != nil {
		return pathErr("sync", name, err)
	}
	return vfs.OS.SyncDir(name)
}

// faultFile is a file of a faultFS.
type faultFile struct {
	vfs.File
	fs *faultFS
}

func (f *faultFile) Read(p []byte) (int, error) {
	if err := f.fs.check("read", f.Name()); err != nil {
		return 0, pathErr("read", f.Name(), err)
	}
	return f.File.Read(p)
}

func (f *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.check("read", f.Name()); err != nil {
		return 0, pathErr("read", f.Name(), err)
	}
	return f.File.ReadAt(p, off)
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.check("write", f.Name()); err != nil {
		if f.fs.rule.short && err != errCrash {
			n, _ := f.File.Write(p[:len(p)/2])
			return n, pathErr("write", f.Name(), err)
		}
		return 0, pathErr("write", f.Name(), err)
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check("write", f.Name()); err != nil {
		if f.fs.rule.short && err != errCrash {
			n, _ := f.File.WriteAt(p[:len(p)/2], off)
			return n, pathErr("write", f.Name(), err)
		}
		return 0, pathErr("write", f.Name(), err)
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.check("truncate", f.Name()); err != nil {
		return pathErr("truncate", f.Name(), err)
	}
	return f.File.Truncate(size)
}

func (f *faultFile) Allocate(size int64) error {
	if err := f.fs.check("allocate", f.Name()); err != nil {
		return pathErr("allocate", f.Name(), err)
	}
	return f.File.Allocate(size)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check("sync", f.Name()); err != nil {
		f.lose(err)
		return pathErr("sync", f.Name(), err)
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	f.remember()
	return nil
}

func (f *faultFile) Datasync() error {
	if err := f.fs.check("sync", f.Name()); err != nil {
		f.lose(err)
		return err // bare, as vfs.OS's Datasync
	}
	if err := f.File.Datasync(); err != nil {
		return err
	}
	f.remember()
	return nil
}

// remember notes the file's content as durable.
func (f *faultFile) remember() {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return
	}
	f.fs.mu.Lock()
	f.fs.synced[f.Name()] = b
	f.fs.mu.Unlock()
}

// lose puts the file back to its last synced content after a failed sync
// (not after a crash: a killed process loses no page of the cache).
func (f *faultFile) lose(err error) {
	if err == errCrash {
		return
	}
	f.fs.mu.Lock()
	b, ok := f.fs.synced[f.Name()]
	f.fs.mu.Unlock()
	if !ok {
		return
	}
	if _, werr := f.File.WriteAt(b, 0); werr == nil {
		f.File.Truncate(int64(len(b)))
	}
}

// Close always works: the kernel closes a dead process's files.
func (f *faultFile) Close() error { return f.File.Close() }

var (
	_ vfs.FS    = (*faultFS)(nil)
	_ io.Reader = (*faultFile)(nil)
)

// errnoText is how an injected errno reads in a message.
func errnoText(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e.Error()
	}
	return fmt.Sprint(err)
}
