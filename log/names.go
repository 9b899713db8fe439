package log

// StreamNamer is an optional capability of a Store, found by type
// assertion: listing stream names in byte order from an index, without
// reading each stream's head. Shell completion uses it, so that
// completing a name costs the same in a store of ten streams or of a
// million; a store without it is asked for Streams instead.
type StreamNamer interface {
	// StreamNames returns up to limit names, in byte order and each
	// once, of the streams whose name starts with prefix and is at or
	// after from (from below prefix means from prefix). Calling it again
	// with from just past the last name returned (name + "\x00") pages
	// on; from = "acc." after "acc-…" skips every name that starts
	// with "acc-". Each call costs O(log streams + limit), reads no event
	// and takes no lock.
	//
	// The list is a superset: it never leaves out a stream that has an
	// event a read would yield, but it may name streams that have none
	// (deleted, truncated, expired, or created by an append that a crash
	// undid), which Head tells apart. A name appended after the call
	// began may be missing. An error wrapping ErrUnsupported means the
	// store cannot answer now (its index is not built yet): use Streams.
	StreamNames(prefix, from string, limit int) ([]string, error)
}

// PrefixStreamer is an optional capability of a Store, found by type
// assertion: Streams for the streams whose name starts with a prefix,
// at a cost that grows with those streams rather than with the store
// (evt streams 'account-7*'). An error wrapping ErrUnsupported means the
// store cannot answer now: use Streams.
type PrefixStreamer interface {
	StreamsWithPrefix(prefix string, match func(string) bool) ([]StreamInfo, error)
}
