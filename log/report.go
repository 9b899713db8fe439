package log

// Report summarises a verify or repair run.
type Report struct {
	Segments int
	Events   uint64
	Streams  int
	Bytes    int64
	Notes    []string // conditions that are not errors (an uncommitted tail)
	Actions  []string // what repair changed
	Chain    string   // head of the hash chain, when verify checked it
}

// Progress is told how many bytes of how many are done; it may be nil.
type Progress func(done, total int64)

// CompactReport says what a compaction did.
type CompactReport struct {
	Segments    int    // sealed segments examined; -1 (and the next two): the store has none
	Rewritten   int    // segments rewritten smaller
	Removed     int    // segments deleted whole
	Dropped     uint64 // records dropped
	BytesBefore int64  // bytes of the sealed segments before
	BytesAfter  int64  // and after
	Snapshots   int    // fold snapshots removed (taken before a cut)
}
