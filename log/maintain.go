package log

import "context"

// The interfaces below are what only some stores can do: a store of files
// checks, repairs and compacts its own files and keeps a hash chain over
// them, where a replicated server does that itself. A command finds them
// by type assertion on its Store; without one it fails with ErrUnsupported.

// Verifier checks a store's files against each other without changing
// anything.
type Verifier interface {
	// Verify checks every record and every derived file; it returns the
	// first problem as an error wrapping ErrCorrupt that names the file
	// and offset. progress, if not nil, is told bytes done of total.
	// A ctx done stops the check soon, with an error wrapping ctx's.
	Verify(ctx context.Context, progress Progress) (Report, error)
}

// ChainVerifier keeps and checks a hash chain over the store's sealed
// data.
type ChainVerifier interface {
	// VerifyChain checks the sealed data against the chain and extends
	// the chain over data sealed since it last ran; a mismatch wraps
	// ErrCorrupt.
	VerifyChain() (head string, added int, err error)
}

// Repairer rebuilds what can be rebuilt.
type Repairer interface {
	// Repair rebuilds every derived file from the store's truth. Damage
	// that would lose acknowledged events is reported (ErrCorrupt) and
	// left; with dropDamaged, damage at the log's end is cut off, the
	// events from it on dropped, and said so in the report. A ctx done
	// while it waits for its locks stops it with ctx's error before it
	// changed anything; once it holds them, it runs to its end.
	Repair(ctx context.Context, dropDamaged bool, progress Progress) (Report, error)
}

// Compacter reclaims the space of events that retention, deletes and
// truncates removed.
type Compacter interface {
	// Compact rewrites or removes the data that holds only removed
	// events; readers see no change. A ctx done stops it at the next
	// point where everything it did so far is complete (what it
	// reclaimed stays reclaimed, nothing is half done), with an error
	// wrapping ctx's.
	Compact(ctx context.Context, progress Progress) (CompactReport, error)
}

// Directory is implemented by stores kept in a directory of files.
type Directory interface {
	// Dir is the store's directory: where its files are (evt stats adds
	// up their sizes), and where a command spools input that must not
	// hold the store's lock while it trickles in.
	Dir() string
	// Sealed reports whether an append through this handle sealed a
	// segment: the time to start a background compaction.
	Sealed() bool
}

// Sizer is implemented by a store that can say how much room it takes
// without reading its events (evt stats).
type Sizer interface {
	// Size returns what the store takes now. Files or messages removed
	// while it adds up (a compaction) are left out, not an error.
	Size() (Size, error)
}

// Size is the room a store takes where it is kept.
type Size struct {
	// Bytes is everything the store keeps: every file of its directory,
	// or what the server stores for it.
	Bytes int64
	// Segments counts its segment files; -1 for a store that has none
	// (a server keeps its own files).
	Segments int
}
