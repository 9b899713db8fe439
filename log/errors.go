package log

import (
	"errors"
	"fmt"
)

// Sentinel errors. Commands map them to exit codes with errors.Is. Their
// texts are what a user reads after "evt: ", so they carry no package
// prefix; they are always wrapped with the specifics.
var (
	// ErrNoStore: the store directory does not exist or holds no store.
	ErrNoStore = errors.New("no store")
	// ErrNotFound: a stream (or other named thing) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: an expected-version check failed; nothing was written.
	ErrConflict = errors.New("wrong expected version")
	// ErrCorrupt: a segment or derived file fails validation.
	ErrCorrupt = errors.New("corrupt store")
	// ErrLocked: the append lock could not be taken in time.
	ErrLocked = errors.New("store is locked")
	// ErrTooLarge: a record or batch exceeds the documented caps.
	ErrTooLarge = errors.New("too large")
	// ErrFailed: an earlier I/O error left the store unable to accept
	// appends in this process (sticky, so nothing unsynced is acknowledged).
	ErrFailed = errors.New("store failed")
	// ErrUnsupported: this kind of store cannot do what was asked (repair
	// of a store that is not a directory of files). Commands exit 2.
	ErrUnsupported = errors.New("not supported by this store")
)

// CorruptError locates a validation failure in a file of the store.
type CorruptError struct {
	File   string // path relative to the store directory
	Offset int64  // byte offset of the bad record or slot, -1 if unknown
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("corrupt store: %s at offset %d: %s", e.File, e.Offset, e.Reason)
	}
	return fmt.Sprintf("corrupt store: %s: %s", e.File, e.Reason)
}

// Unwrap lets errors.Is(err, ErrCorrupt) match.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
