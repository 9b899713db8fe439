package fold

import "github.com/evtdev/evt/codec"

// NewMerge returns the default reducer: the state starts as null and
// becomes codec.MergePatch(state, data) after each event, data being the
// event's decoded data. As RFC 7396 says, data that is not an object
// replaces the state; in particular an event whose data is null (an event
// appended without data) resets the state to null.
func NewMerge() Reducer { return mergeReducer{} }

type mergeReducer struct{}

func (mergeReducer) Init() (any, error) { return nil, nil }

// Step decodes the data straight into the state (codec.MergeJSON): the
// patch is never built, and the state's objects are updated in place.
func (mergeReducer) Step(state any, ev *Input) (any, error) {
	s, err := codec.MergeJSON(state, ev.Data)
	if err != nil {
		return nil, stepError(ev, &DataError{Field: "data", Err: err})
	}
	return s, nil
}

func (mergeReducer) Fingerprint() string { return "merge" }

// DataError is an event whose data or metadata is not JSON: the store is
// damaged (it validates JSON at append), or a caller built a bad Input.
type DataError struct {
	Field string // "data" or "metadata"
	Err   error  // a *codec.SyntaxError
}

func (e *DataError) Error() string { return "event " + e.Field + ": " + e.Err.Error() }

// Unwrap returns the syntax error.
func (e *DataError) Unwrap() error { return e.Err }
