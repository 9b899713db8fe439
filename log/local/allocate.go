package local

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// allocate reserves disk blocks for the first size bytes of f. The
// tables are mapped, and a store to a page of a mapping that the file
// system cannot back (a hole, on a full disk) is SIGBUS, which kills the
// process with a Go stack trace instead of an error; with the blocks
// reserved when the table is made, a full disk fails that one call with
// ENOSPC instead. File systems without fallocate keep the holes.
func allocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "allocate", Path: f.Name(), Err: err}
	}
	return nil
}
