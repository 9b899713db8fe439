package log

import "time"

// Retention is the store's retention policy: rules per stream selection,
// and a limit on the size of the whole  It is small state of its own
// (DIR/retention.json, replaced atomically under the append lock), not
// derived from the
//
// Limits apply to reads at once: an event a limit removes is never printed,
// folded or delivered again. `evt compact` reclaims the space later.
type Retention struct {
	Rules []Rule `json:"rules,omitempty"`
	// MaxBytes bounds the log's segment files: the oldest sealed segments
	// are removed while the rest exceeds it. 0: no limit.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// AutoCompact asks the appender that seals a segment to start a
	// compaction in the background (evt compact --auto on).
	AutoCompact bool `json:"auto_compact,omitempty"`
}

// Rule limits the streams its selection matches. Every rule that matches
// a stream applies; the strictest wins.
type Rule struct {
	Selection string        `json:"selection"`
	MaxAge    time.Duration `json:"max_age,omitempty"`   // events older than this are removed
	MaxCount  uint64        `json:"max_count,omitempty"` // a stream keeps its newest MaxCount events
	// UntilAcked makes the streams a message queue: an event is removed
	// once every consumer group whose selection matches its stream has
	// acked it (and everything before it). With no such group, events
	// stay.
	UntilAcked bool `json:"until_acked,omitempty"`
	// Archive is a directory (an absolute path): what compaction
	// reclaims of the streams this rule matches is first written there
	// (log/archive), so it is archived instead of forgotten. Events a
	// delete or truncate cut are not archived: those are removed on
	// purpose.
	Archive string `json:"archive,omitempty"`
}
