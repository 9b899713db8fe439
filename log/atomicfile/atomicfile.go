// Package atomicfile replaces small files whole: a reader, a crash or a
// power loss sees the old content or the new one, never a mix and never
// an empty file.
//
// It is the one way evt writes small state of its own (group state and
// members, retention rules, chain file, config, cursor files). The steps
// are the classic ones (write-temp, fsync, rename, fsync the directory),
// in this order because each makes the next safe:
//
//  1. write PATH.tmp and fsync it, so the bytes are on disk before any
//     name points at them (without this, ext4 and XFS can publish a
//     zero-length file after a power loss);
//  2. rename PATH.tmp over PATH, atomic on POSIX file systems;
//  3. fsync the directory when PATH did not exist before, so the new name
//     survives a power loss; when it replaced an older file, a power loss
//     leaves the old or the new name's content, both complete.
//
// The temporary name is fixed (PATH.tmp), so callers that can race on one
// path hold a lock of their own; a temporary left by a crash is
// overwritten by the next write.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, created with perm if new. When it returns
// nil the new content is durable. On error the old content is intact and
// the temporary file is removed.
func Write(path string, data []byte, perm os.FileMode) error {
	_, err := os.Lstat(path)
	isNew := errors.Is(err, fs.ErrNotExist)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if isNew {
		return SyncDir(filepath.Dir(path))
	}
	return nil
}

// Rename renames oldpath to newpath, which must be in the same
// directory, and makes the new name durable (it fsyncs the directory).
// It is for a file that must be complete and set up before anyone sees
// it under its name, such as one locked by its creator first, when the
// file's content needs no fsync of its own (it is empty, or the caller
// synced it).
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(newpath))
}

// SyncDir makes a directory's entries (files created, renamed or removed
// in it) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
