package fold

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/itchyny/gojq"
)

// Errors of a jq step, the cause inside a *StepError.
var (
	// ErrNoState: the expression produced no result (`empty`, `select`
	// that failed). A fold has no state to go on with; an expression that
	// means "no change" says `.`.
	ErrNoState = errors.New("jq: produced no state")
	// ErrTimeout: the expression ran longer than the timeout on one event.
	ErrTimeout = errors.New("jq: timed out")
)

// program is a jq expression compiled for folding: `.` is the state and
// $event the event's envelope.
type program struct {
	code *gojq.Code
	// usesEvent is false when the expression's text does not contain
	// "$event": then it cannot read the variable, and the envelope (and
	// the event's decoded data) need not be built. A mention in a comment
	// or a string only costs that work.
	usesEvent bool
}

// compile parses and compiles expr. The environment ($ENV, env) is empty:
// a fold's result must depend only on its events, or snapshots would lie.
func compile(expr string) (*program, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid jq expression: %w", err)
	}
	code, err := gojq.Compile(q, gojq.WithVariables([]string{"$event"}))
	if err != nil {
		return nil, fmt.Errorf("invalid jq expression: %w", err)
	}
	return &program{code: code, usesEvent: strings.Contains(expr, "$event")}, nil
}

// run returns the expression's result for state and ev: its last result
// when it has several (the choice of jq's own `reduce`, whose update may
// also yield several values), ErrNoState when it has none. timeout <= 0
// means no limit.
func (p *program) run(state any, ev *Input, timeout time.Duration) (any, error) {
	var event any
	if p.usesEvent {
		e, err := envelope(ev)
		if err != nil {
			return nil, err
		}
		event = e
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	it := p.code.RunWithContext(ctx, state, event)
	var out any
	n := 0
	for {
		v, ok := it.Next()
		if !ok {
			break
		}
		if err, ok := v.(error); ok {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w after %s on one event (does the expression ever end?)", ErrTimeout, timeout)
			}
			return nil, fmt.Errorf("jq: %w", err)
		}
		out = v
		n++
	}
	if n == 0 {
		return nil, ErrNoState
	}
	return out, nil
}

// envelope is $event: the event as evt prints it (codec.AppendEventJSON)
// and as jq would decode that line. The keys are the printed ones,
// metadata left out when empty; gojq objects have no order (they print
// with sorted keys), so the printed order has nothing to keep.
func envelope(ev *Input) (map[string]any, error) {
	data, err := Decode(ev.Data)
	if err != nil {
		return nil, &DataError{Field: "data", Err: err}
	}
	m := make(map[string]any, 8)
	m["position"] = uintValue(ev.Position)
	m["stream"] = ev.Stream
	m["version"] = uintValue(ev.Version)
	m["type"] = ev.Type
	m["time"] = ev.Time.UTC().Format(codec.TimeFormat)
	m["id"] = ev.ID
	m["data"] = data
	if len(ev.Metadata) > 0 {
		meta, err := Decode(ev.Metadata)
		if err != nil {
			return nil, &DataError{Field: "metadata", Err: err}
		}
		m["metadata"] = meta
	}
	return m, nil
}

// uintValue is n as gojq's native int when it fits, else exact.
func uintValue(n uint64) any {
	if n <= math.MaxInt {
		return int(n)
	}
	return json.Number(strconv.FormatUint(n, 10))
}

// NewJQ returns the reducer of a jq expression (--reduce): the state
// starts as null, and after each event it is expr's result with `.` the
// state and $event the envelope. An expression with several results keeps
// the last one, as jq's `reduce` does; one with none fails the step
// (ErrNoState). The expression runs at most the timeout on one event
// (DefaultTimeout, see WithTimeout); running longer fails the step with
// ErrTimeout.
func NewJQ(expr string, opts ...Option) (Reducer, error) {
	p, err := compile(expr)
	if err != nil {
		return nil, err
	}
	o := newOptions(opts)
	return &jqReducer{prog: p, timeout: o.timeout, fingerprint: "jq:" + sha256Hex([]byte(expr))}, nil
}

type jqReducer struct {
	prog        *program
	timeout     time.Duration
	fingerprint string
}

func (r *jqReducer) Init() (any, error) { return nil, nil }

func (r *jqReducer) Step(state any, ev *Input) (any, error) {
	s, err := r.prog.run(state, ev, r.timeout)
	if err != nil {
		return nil, stepError(ev, err)
	}
	return s, nil
}

// Fingerprint is "jq:" and the SHA-256 of the expression's text, byte for
// byte: the same expression written differently is another reducer, which
// costs a snapshot, never correctness.
func (r *jqReducer) Fingerprint() string { return r.fingerprint }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
