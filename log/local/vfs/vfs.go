// Package vfs is the file-system seam of the local store: every file the
// store opens, writes, syncs, renames or removes goes through an FS, so a
// test can put a fault-injecting FS in front of a real directory and run
// ENOSPC, EIO, a failed fsync, a short write, a torn rename or a crash at
// any operation as a table case in the test process.
//
// The interface is the smallest that covers what the store does (the
// model is hashicorp/raft-wal's types.VFS). What it does not model goes
// to the file descriptor (File.Fd): advisory locks (flock), the mapped
// tables (mmap; their sync is File.Datasync, which on Linux is what
// msync(MS_SYNC) does for a shared mapping), and copy_file_range in
// compaction. A fault FS still sees every open, sync, rename and remove
// around those.
//
// OS, the real implementation, is os with one difference: files are
// opened without the Go runtime's poller. os.OpenFile probes every file
// it opens for the poller (four fcntl calls and an epoll_ctl that fails
// with EPERM for a regular file); a store file is never pollable, so OS
// opens with open(2) and wraps the blocking descriptor with os.NewFile
// (one fcntl). Reads and writes are then plain pread/pwrite, as before.
package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// FS is what the local store asks of a file system. Names are paths as
// the os package takes them. Errors are the os package's (*fs.PathError,
// *os.LinkError), so errors.Is(err, fs.ErrNotExist) and the messages
// work the same through any implementation.
type FS interface {
	// OpenFile opens name with os flags (os.O_RDWR|os.O_CREATE, …).
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Rename replaces newpath by oldpath atomically (rename(2)).
	Rename(oldpath, newpath string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// Mkdir makes one directory.
	Mkdir(name string, perm fs.FileMode) error
	// ReadDir lists a directory, sorted by name.
	ReadDir(name string) ([]fs.DirEntry, error)
	// Stat describes name, following symbolic links.
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the entries of directory name (files created,
	// renamed or removed in it) durable.
	SyncDir(name string) error
}

// File is an open file of an FS.
type File interface {
	io.Reader
	io.Writer
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Name is the name the file was opened with.
	Name() string
	Stat() (fs.FileInfo, error)
	Truncate(size int64) error
	// Sync is fsync: data and metadata are durable when it returns nil.
	// After it fails, nothing written since the last successful Sync may
	// be assumed on disk, even where a read still returns it.
	Sync() error
	// Datasync is fdatasync: the data, and the metadata needed to read
	// it (the size), are durable when it returns nil. The same caution
	// after a failure as Sync. Its error is the bare errno, which callers
	// wrap with the file's name.
	Datasync() error
	// Allocate reserves disk blocks for the first size bytes (a full
	// disk fails here with ENOSPC instead of later in a mapped page);
	// a file system without fallocate returns nil.
	Allocate(size int64) error
	// Fd is the descriptor, for what the seam does not model (locks,
	// mappings, copy_file_range).
	Fd() uintptr
}

// OS is the real file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(name, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return osFile{os.NewFile(uintptr(fd), name)}, nil
}

func (osFS) Rename(oldpath, newpath string) error       { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                   { return os.Remove(name) }
func (osFS) Mkdir(name string, perm fs.FileMode) error  { return os.Mkdir(name, perm) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }
func (osFS) Stat(name string) (fs.FileInfo, error)      { return os.Stat(name) }

func (o osFS) SyncDir(name string) error {
	d, err := o.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// osFile is an *os.File with the two calls os does not have.
type osFile struct{ *os.File }

func (f osFile) Datasync() error {
	for {
		err := unix.Fdatasync(int(f.File.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

func (f osFile) Allocate(size int64) error {
	err := unix.Fallocate(int(f.File.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "allocate", Path: f.Name(), Err: err}
	}
	return nil
}

// ReadFile reads the whole of name.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	b := make([]byte, 0, size+512)
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// WriteFile writes data to name, creating or truncating it, without a
// sync (for state whose loss the store tolerates; see
// log/atomicfile.WriteFS for the durable replacement of a file).
func WriteFile(fsys FS, name string, data []byte, perm fs.FileMode) error {
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirAll makes name and any missing parents.
func MkdirAll(fsys FS, name string, perm fs.FileMode) error {
	if st, err := fsys.Stat(name); err == nil {
		if st.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
	}
	if parent := filepath.Dir(name); parent != name {
		if err := MkdirAll(fsys, parent, perm); err != nil {
			return err
		}
	}
	if err := fsys.Mkdir(name, perm); err != nil {
		if st, serr := fsys.Stat(name); serr == nil && st.IsDir() {
			return nil // made meanwhile
		}
		return err
	}
	return nil
}

// RemoveAll removes name and everything under it; a missing name is not
// an error. It does not follow symbolic links below name.
func RemoveAll(fsys FS, name string) error {
	st, err := fsys.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return removeAll(fsys, name, st.IsDir())
}

func removeAll(fsys FS, name string, dir bool) error {
	if dir {
		ents, err := fsys.ReadDir(name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, e := range ents {
			if err := removeAll(fsys, filepath.Join(name, e.Name()), e.IsDir()); err != nil {
				return err
			}
		}
	}
	if err := fsys.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
