package local

import "github.com/evtdev/evt/log/local/vfs"

// allocate reserves disk blocks for the first size bytes of f. The
// tables are mapped, and a store to a page of a mapping that the file
// system cannot back (a hole, on a full disk) is SIGBUS, which kills the
// process with a Go stack trace instead of an error; with the blocks
// reserved when the table is made, a full disk fails that one call with
// ENOSPC instead. File systems without fallocate keep the holes.
func allocate(f vfs.File, size int64) error { return f.Allocate(size) }
