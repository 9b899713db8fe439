package log

import "time"

// StreamInfo describes the head of one stream.
type StreamInfo struct {
	Stream  string
	Version uint64 // last version; 0 only for a stream that does not exist
	// Cut is the last version removed by evt truncate or evt delete: the
	// stream's events start after it. Deleted says the last cut was a
	// delete and no event has been appended since.
	Cut      uint64
	Deleted  bool
	Last     uint64 // position of the last event
	LastType string
	LastTime time.Time
}
