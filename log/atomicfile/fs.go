package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/evtdev/evt/log/local/vfs"
)

// WriteFS is Write through a file system seam (the local store's, so its
// fault tests reach these steps too): the same four steps, the same
// guarantee.
func WriteFS(fsys vfs.FS, path string, data []byte, perm fs.FileMode) error {
	tmp := path + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
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
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		fsys.Remove(tmp)
		return err
	}
	return fsys.SyncDir(filepath.Dir(path))
}

// ReplaceFS is Replace through a file system seam: the rename without
// the fsyncs, for a cache (see Replace).
func ReplaceFS(fsys vfs.FS, path string, data []byte, perm fs.FileMode) error {
	tmp := path + ".tmp"
	err := vfs.WriteFile(fsys, tmp, data, perm)
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		fsys.Remove(tmp)
	}
	return err
}
