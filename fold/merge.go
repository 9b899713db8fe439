package fold

// MergePatch applies patch to target as RFC 7396 (JSON Merge Patch)
// defines it, on decoded JSON values, and returns the result:
//
//	if patch is an object:
//	    if target is not an object: target = {}
//	    for each member name: value of patch:
//	        if value is null: remove name from target
//	        else: target[name] = MergePatch(target[name], value)
//	    return target
//	return patch
//
// Aliasing, so that a fold can patch one state per entity in place:
//
//   - patch is never modified.
//   - target's objects are modified in place: when target and patch are
//     both objects the result is target itself. Use target's old value
//     only if you encoded or copied it before.
//   - Every object of the result reached from its root through objects
//     only is target's or newly made, never patch's; so a later MergePatch
//     on the result never modifies patch. The result may share patch's
//     other values: its arrays (and all they contain) and its strings and
//     numbers, which MergePatch never modifies.
//   - target and patch must not share objects (MergePatch(x, x) modifies x).
func MergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = make(map[string]any, len(p))
	}
	for name, v := range p {
		switch v := v.(type) {
		case nil:
			delete(t, name)
		case map[string]any:
			t[name] = MergePatch(t[name], v)
		default:
			t[name] = v
		}
	}
	return t
}

// NewMerge returns the default reducer: the state starts as null and
// becomes MergePatch(state, data) after each event, data being the event's
// decoded data. As RFC 7396 says, data that is not an object replaces the
// state; in particular an event whose data is null (an event appended
// without data) resets the state to null.
func NewMerge() Reducer { return mergeReducer{} }

type mergeReducer struct{}

func (mergeReducer) Init() (any, error) { return nil, nil }

// Step decodes the data straight into the state (mergeJSON): the patch is
// never built, and the state's objects are updated in place.
func (mergeReducer) Step(state any, ev *Input) (any, error) {
	s, err := mergeJSON(state, ev.Data)
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
