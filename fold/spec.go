package fold

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/evtdev/evt/codec"
)

// Spec is a parsed fold specification (--spec FILE):
//
//	init: {balance: 0}                        # the state before the first event; default null
//	on:                                       # event type: jq expression
//	  Deposited: .balance += $event.data.amount
//	  Withdrawn: .balance -= $event.data.amount
//	default: .                                # for other types; absent: state unchanged
//
// In each expression `.` is the state and $event the envelope, as for
// NewJQ. A Spec is immutable and safe for concurrent use.
type Spec struct {
	init        any                 // JSON-compatible, never modified
	on          map[string]*program // event type → expression
	def         *program            // nil: other types leave the state unchanged
	fingerprint string
}

// specKeys are the top-level keys of a spec, in the order messages list them.
var specKeys = []string{"init", "on", "default"}

// ErrBadSpec is matched (errors.Is) by every error of NewSpec (and of
// cmd/specfile, which reads spec files).
var ErrBadSpec = errors.New("invalid fold spec")

// NewSpec builds a spec from a decoded document: what encoding/json,
// codec.DecodeJSON or yaml.v3 give when decoding a spec into an `any`
// (a spec file read by cmd/specfile, a config file's `folds: {NAME:
// SPEC}`). Map keys and numbers are converted as cmd/specfile converts
// YAML: keys are the text of scalar keys, numbers json.Number. Every
// expression is compiled here, so a spec that builds cannot fail later
// for its syntax. Errors name the key or event type at fault and match
// ErrBadSpec.
func NewSpec(doc any) (*Spec, error) {
	v, err := jsonValue(doc, "", 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	s, err := newSpec(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	return s, nil
}

func newSpec(doc any) (*Spec, error) {
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a mapping with keys %s, got %s", strings.Join(specKeys, ", "), kind(doc))
	}
	unknown := []string{}
	for k := range m {
		if !slices.Contains(specKeys, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("unknown key %q (want %s)", unknown[0], strings.Join(specKeys, ", "))
	}

	s := &Spec{init: m["init"], on: map[string]*program{}}
	canon := map[string]any{"init": s.init}
	if on, present := m["on"]; present && on != nil {
		types, ok := on.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("on: want a mapping of event type to jq expression, got %s", kind(on))
		}
		names := make([]string, 0, len(types))
		for t := range types {
			names = append(names, t)
		}
		slices.Sort(names) // errors in a stable order
		exprs := map[string]any{}
		for _, t := range names {
			if err := codec.ValidateType(t); err != nil {
				return nil, fmt.Errorf("on: %w", err)
			}
			expr, ok := types[t].(string)
			if !ok {
				return nil, fmt.Errorf("on %q: want a jq expression (a string), got %s", t, kind(types[t]))
			}
			p, err := compile(expr)
			if err != nil {
				return nil, fmt.Errorf("on %q: %w", t, err)
			}
			s.on[t] = p
			exprs[t] = expr
		}
		canon["on"] = exprs
	}
	if d, present := m["default"]; present {
		expr, ok := d.(string)
		if !ok {
			return nil, fmt.Errorf("default: want a jq expression (a string), got %s", kind(d))
		}
		p, err := compile(expr)
		if err != nil {
			return nil, fmt.Errorf("default: %w", err)
		}
		s.def = p
		canon["default"] = expr
	}
	if len(s.on) == 0 && s.def == nil {
		return nil, errors.New("no expressions: want an `on` mapping of event type to jq expression, or a `default`")
	}
	b, err := codec.EncodeJSON(canon)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	s.fingerprint = "spec:" + sha256Hex(b)
	return s, nil
}

// Reducer returns the spec's reducer. Each event runs the expression of
// its type, or the default one, or none (the state is unchanged); the
// expression's results are used as NewJQ uses them.
func (s *Spec) Reducer(opts ...Option) Reducer {
	o := newOptions(opts)
	return &specReducer{spec: s, timeout: o.timeout}
}

type specReducer struct {
	spec    *Spec
	timeout time.Duration
}

// Init returns a copy of the spec's init, so that a caller modifying its
// state cannot change the next fold's.
func (r *specReducer) Init() (any, error) { return deepCopy(r.spec.init), nil }

func (r *specReducer) Step(state any, ev *Input) (any, error) {
	p := r.spec.on[ev.Type]
	if p == nil {
		p = r.spec.def
		if p == nil {
			return state, nil
		}
	}
	s, err := p.run(state, ev, r.timeout)
	if err != nil {
		return nil, stepError(ev, err)
	}
	return s, nil
}

// Fingerprint is "spec:" and the SHA-256 of the spec's canonical JSON
// ({"default","init","on"}, keys sorted, default omitted when absent):
// comments, layout, key order and YAML vs JSON do not change it; any change
// to the init or an expression does.
func (r *specReducer) Fingerprint() string { return r.spec.fingerprint }

// deepCopy copies the objects and arrays of a JSON value.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = deepCopy(e)
		}
		return a
	}
	return v
}

// kind names a JSON value's type for messages.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return "a number"
}

// at prefixes a message with the place of a value in the spec.
func at(path string) string {
	if path == "" {
		return ""
	}
	return strings.TrimPrefix(path, ".") + ": "
}

// jsonValue converts a decoded document (encoding/json, yaml.v3, viper) to
// a JSON value of the kinds codec.DecodeJSON returns.
func jsonValue(v any, path string, depth int) (any, error) {
	if depth > codec.MaxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", codec.MaxJSONDepth)
	}
	switch v := v.(type) {
	case nil, bool, string, json.Number:
		if n, ok := v.(json.Number); ok && !codec.ValidNumber(string(n)) {
			return nil, fmt.Errorf("%sinvalid number %q", at(path), string(n))
		}
		return v, nil
	case int:
		return json.Number(strconv.Itoa(v)), nil
	case int64:
		return json.Number(strconv.FormatInt(v, 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(v, 10)), nil
	case uint:
		return json.Number(strconv.FormatUint(uint64(v), 10)), nil
	case *big.Int:
		return json.Number(v.String()), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s%v is not a JSON number", at(path), v)
		}
		b, err := codec.AppendJSON(nil, v) // finite: as encoding/json writes it
		if err != nil {
			return nil, err
		}
		return json.Number(b), nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case []byte:
		return string(v), nil
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			x, err := jsonValue(e, path+"."+strconv.Itoa(i), depth+1)
			if err != nil {
				return nil, err
			}
			a[i] = x
		}
		return a, nil
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			x, err := jsonValue(e, path+"."+k, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = x
		}
		return m, nil
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			ks, err := jsonValue(k, path, depth+1)
			if err != nil {
				return nil, err
			}
			var key string
			switch ks := ks.(type) {
			case string:
				key = ks
			case json.Number:
				key = string(ks)
			case bool:
				key = strconv.FormatBool(ks)
			case nil:
				key = "null"
			default:
				return nil, fmt.Errorf("%sa key must be a scalar", at(path))
			}
			if _, dup := m[key]; dup {
				return nil, fmt.Errorf("%skey %q written twice", at(path), key)
			}
			x, err := jsonValue(e, path+"."+key, depth+1)
			if err != nil {
				return nil, err
			}
			m[key] = x
		}
		return m, nil
	}
	return nil, fmt.Errorf("%sunsupported value of type %T", at(path), v)
}
