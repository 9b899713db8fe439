// Package atomicfile replaces small files whole: a reader, a crash or a
// power loss sees the old content or the new one, never a mix and never
// an empty file.
//
// It is the one way evt writes small state of its own (retention rules,
// group configuration and state, the chain file, cursor files; fold
// snapshots through Replace, see there). The steps
// are the classic ones (write-temp, fsync, rename, fsync the directory),
// in this order because each makes the next safe:
//
//  1. write PATH.tmp and fsync it, so the bytes are on disk before any
//     name points at them (without this, ext4 and XFS can publish a
//     zero-length file after a power loss);
//  2. rename PATH.tmp over PATH, atomic on POSIX file systems;
//  3. fsync the directory, so the rename survives a power loss: without
//     it a replaced file may come back with its old content after a
//     reboot (a rule set, a cursor saved or an offset committed would be
//     undone), and a new one may not come back at all.
//
// The temporary name is fixed (PATH.tmp), so callers that can race on one
// path hold a lock of their own; a temporary left by a crash is
// overwritten by the next write.
package atomicfile

import (
	"os"
	"path/filepath"

	"github.com/evtdev/evt/log/local/vfs"
)

// Write replaces path with data, created with perm if new. When it returns
// nil the new content is durable. On error the old content is intact and
// the temporary file is removed. (WriteFS on the operating system's file
// system: the steps are written once.)
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFS(vfs.OS, path, data, perm)
}

// Replace replaces path with data, created with perm if new, through the
// same temporary file and rename as Write but without an fsync: readers,
// and a crash of the process (kill -9), see the old content or the new
// one, never a mix; a power loss may undo the latest replacements, or on
// some file systems leave the file empty. It is for a cache whose loss
// costs recomputation, not data (fold snapshots). Everything else goes
// through Write.
func Replace(path string, data []byte, perm os.FileMode) error {
	return ReplaceFS(vfs.OS, path, data, perm)
}

// Rename renames oldpath to newpath, which must be in the same
// directory, and makes the new name durable (it fsyncs the directory).
// It is for a file that must be complete and set up before anyone sees
// it under its name, such as one locked by its creator first, when the
// file's content needs no fsync of its own (it is empty, or the caller
// synced it).
func Rename(oldpath, newpath string) error {
	if err := vfs.OS.Rename(oldpath, newpath); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(newpath))
}

// SyncDir makes a directory's entries (files created, renamed or removed
// in it) durable.
func SyncDir(dir string) error { return vfs.OS.SyncDir(dir) }
