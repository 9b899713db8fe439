// Package fold computes a stream's state as a left fold of its events:
// state = Step(…Step(Step(Init(), e1), e2)…, en).
//
// It is pure: no files, no clocks beyond the per-event jq timeout, no
// environment. The caller (cmd) reads events from a store and drives the
// loop; a second store backend reuses this package unchanged.
//
// Three reducers: NewMerge, the JSON merge patch (RFC 7396) of every
// event's data; NewJQ, one jq expression run per event; and a Spec (YAML or
// JSON) with an initial state and one jq expression per event type.
//
// States are decoded JSON values as gojq and codec.DecodeJSON produce
// them: nil, bool, string, json.Number, float64, int, *big.Int, []any and
// map[string]any. codec.EncodeJSON writes one as canonical JSON (snapshots,
// fingerprints), codec.DecodeJSON reads it back: fold scans no JSON itself.
//
// Ownership: the fold loop owns the state. Step may modify the state it is
// given in place and return it (the merge reducer does, so that folding
// 100k entities does not copy every map on every event), so a caller that
// needs an earlier state after the next Step must encode it first.
package fold

import (
	"fmt"
	"iter"
	"time"

	"github.com/evtdev/evt/codec"
)

// Reducer folds events into a state. Every method is safe to call from one
// goroutine at a time; the reducers of this package also allow concurrent
// calls (they keep no per-call state), but a caller should not rely on it
// for reducers of other packages.
type Reducer interface {
	// Init returns the state before the first event: a fresh value the
	// caller owns. It is null (nil) for the merge and jq reducers and the
	// spec's init for a spec.
	Init() (any, error)

	// Step returns the state after ev, given the state before it. It may
	// modify state in place (see the package comment) and must not keep
	// ev or anything it points to after returning. Any error is a
	// *StepError naming the event; the state is then undefined and the
	// fold should stop.
	Step(state any, ev *Input) (any, error)

	// Fingerprint identifies what the reducer computes: two reducers with
	// the same fingerprint give the same state for the same events, so
	// a cached state (snapshot) keyed by it can be reused. It is stable
	// across runs and versions of evt as long as the reducer's semantics
	// are unchanged.
	Fingerprint() string
}

// Input is what a reducer may read of one event. Data and Metadata are raw
// compact JSON as stored; reducers decode them only when they need them
// (the merge reducer decodes data straight into the state; the jq reducer
// builds the $event envelope only when the expression mentions $event).
// A reducer never modifies an Input or the bytes it points to.
type Input struct {
	Position uint64
	Stream   string
	Version  uint64
	Type     string
	Time     time.Time
	ID       string
	Data     []byte // compact JSON, never empty
	Metadata []byte // compact JSON, or nil when absent
}

// EventInput returns the Input of e; it aliases e's byte slices.
func EventInput(e *codec.Event) Input {
	return Input{
		Position: e.Position,
		Stream:   e.Stream,
		Version:  e.Version,
		Type:     e.Type,
		Time:     e.Time,
		ID:       e.ID,
		Data:     e.Data,
		Metadata: e.Metadata,
	}
}

// StepError is a reducer failing on one event. Its message names the
// stream, the event's global position and its type, so the user can find
// the event with `evt read`.
type StepError struct {
	Stream   string
	Position uint64
	Version  uint64
	Type     string
	Err      error // the cause, e.g. "jq: cannot add: …" or ErrTimeout
}

func (e *StepError) Error() string {
	return fmt.Sprintf("fold %s at position %d (%s): %v", e.Stream, e.Position, e.Type, e.Err)
}

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }

func stepError(ev *Input, err error) *StepError {
	return &StepError{Stream: ev.Stream, Position: ev.Position, Version: ev.Version, Type: ev.Type, Err: err}
}

// Fold applies r to every event of events in order, starting from state,
// and returns the final state. It stops at the first error, from events
// (returned as is) or from r (a *StepError). The caller of Fold usually
// owns the loop itself (to print traces, stop at a version, save
// snapshots); Fold is the loop for everyone else, tests included.
func Fold(r Reducer, state any, events iter.Seq2[*Input, error]) (any, error) {
	for ev, err := range events {
		if err != nil {
			return nil, err
		}
		if state, err = r.Step(state, ev); err != nil {
			return nil, err
		}
	}
	return state, nil
}

// DefaultTimeout bounds the time one jq expression may take on one event.
// Folds run on data: an expression that takes longer than this on one
// event is almost certainly one that never ends (`def f: f; f`,
// `repeat(.)`), and a fold must not hang.
const DefaultTimeout = 2 * time.Second

// Option configures a jq or spec reducer.
type Option func(*options)

type options struct {
	timeout time.Duration
}

func newOptions(opts []Option) options {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithTimeout sets the per-event limit of a jq expression (default
// DefaultTimeout); d <= 0 means no limit. The timeout is not part of the
// fingerprint: it can make a fold fail, never change its result.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}
