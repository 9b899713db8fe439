package log

// Snapshot is a cached fold state.
type Snapshot struct {
	Version  uint64 // the stream version folded through
	Position uint64 // that event's position
	State    []byte // the state, as JSON
}
