package fold

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/evtdev/evt/codec"
)

const accountSpec = `
# A bank account.
init: {balance: 0, owner: null}
on:
  Opened: .owner = $event.data.owner
  Deposited: .balance += $event.data.amount
  Withdrawn: |
    if $event.data.amount > .balance
    then error("overdrawn by \($event.data.amount - .balance)")
    else .balance -= $event.data.amount
    end
`

func TestSpecReducer(t *testing.T) {
	tests := []struct {
		name string
		spec string
		evs  []*Input
		want string
	}{
		{"yaml", accountSpec, []*Input{
			event(1, "Opened", `{"owner":"ann"}`),
			event(2, "Deposited", `{"amount":50}`),
			event(3, "Withdrawn", `{"amount":20}`),
			event(4, "Renamed", `{"owner":"bob"}`), // not listed, no default: unchanged
		}, `{"balance":30,"owner":"ann"}`},
		{"json", `{"init": {"n": 0}, "on": {"A": ".n += 1"}}`, []*Input{
			event(1, "A", `{}`), event(2, "B", `{}`), event(3, "A", `{}`),
		}, `{"n":2}`},
		{"json indented with tabs", "{\n\t\"on\": {\n\t\t\"A\": \". + 1\"\n\t},\n\t\"init\": 0\n}\n", []*Input{event(1, "A", `{}`)}, `1`},
		{"default", "init: []\non:\n  A: . + [\"a\"]\ndefault: . + [$event.type]", []*Input{
			event(1, "A", `{}`), event(2, "B", `{}`), event(3, "C", `{}`),
		}, `["a","B","C"]`},
		{"default alone", "default: (. // 0) + 1", []*Input{event(1, "A", `{}`), event(2, "B", `{}`)}, `2`},
		{"no init is null", "on: {A: .}", []*Input{event(1, "A", `{}`)}, `null`},
		{"types that YAML would read as other scalars", "on: {true: '\"t\"', 1: '\"one\"', null: '\"n\"', 'on': '\"on\"'}", []*Input{
			event(1, "true", `{}`), event(2, "1", `{}`), event(3, "null", `{}`), event(4, "on", `{}`),
		}, `"on"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSpec([]byte(tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			got, err := foldAll(t, s.Reducer(), tc.evs...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("state = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSpecStepError(t *testing.T) {
	s, err := ParseSpec([]byte(accountSpec))
	if err != nil {
		t.Fatal(err)
	}
	_, err = foldAll(t, s.Reducer(),
		&Input{Position: 41, Stream: "account-7", Version: 1, Type: "Deposited", Data: []byte(`{"amount":5}`)},
		&Input{Position: 42, Stream: "account-7", Version: 2, Type: "Withdrawn", Data: []byte(`{"amount":7}`)},
		&Input{Position: 43, Stream: "account-7", Version: 3, Type: "Deposited", Data: []byte(`{"amount":5}`)},
	)
	var se *StepError
	if !errors.As(err, &se) || se.Stream != "account-7" || se.Position != 42 || se.Version != 2 || se.Type != "Withdrawn" {
		t.Fatalf("err = %#v", err)
	}
	const want = `fold account-7 at position 42 (Withdrawn): jq: error: overdrawn by 2`
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}

// Init hands out a fresh copy: a caller that changes one fold's state
// does not change the next fold's start.
func TestSpecInitIsFresh(t *testing.T) {
	s, err := ParseSpec([]byte("init: {a: [1]}\non: {A: .}"))
	if err != nil {
		t.Fatal(err)
	}
	r := s.Reducer()
	st, _ := r.Init()
	st.(map[string]any)["a"].([]any)[0] = "changed"
	st.(map[string]any)["b"] = 2
	st, _ = r.Init()
	if got := mustEncode(t, st); got != `{"a":[1]}` {
		t.Errorf("Init = %s", got)
	}
}

func TestSpecValues(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{`1.10`, `1.10`}, // the number's text, as DecodeJSON keeps it
		{`123456789012345678901234567890`, `123456789012345678901234567890`},
		{`-0`, `-0`},
		{`1e3`, `1e3`},
		{`0x1f`, `31`},
		{`+7`, `7`},
		{`.5`, `0.5`},
		{`"1"`, `"1"`},
		{`yes`, `"yes"`}, // YAML 1.2: a string
		{`true`, `true`},
		{`~`, `null`},
		{`2001-12-14`, `"2001-12-14"`},
		{`{b: 1, a: [x, {c: d}]}`, `{"a":["x",{"c":"d"}],"b":1}`},
		{"\n  base: &b {x: 1, y: 2}\n  derived: {<<: *b, y: 3}\n", `{"base":{"x":1,"y":2},"derived":{"x":1,"y":3}}`},
	}
	for _, tc := range tests {
		s, err := ParseSpec([]byte("on: {A: .}\ninit: " + tc.yaml))
		if err != nil {
			t.Errorf("init: %s: %v", tc.yaml, err)
			continue
		}
		if got := mustEncode(t, s.init); got != tc.want {
			t.Errorf("init: %s = %s, want %s", tc.yaml, got, tc.want)
		}
		checkJSONTypes(t, s.init)
	}
}

// checkJSONTypes checks that v holds only what Decode returns.
func checkJSONTypes(t *testing.T, v any) {
	t.Helper()
	switch v := v.(type) {
	case nil, bool, string, json.Number:
	case []any:
		for _, e := range v {
			checkJSONTypes(t, e)
		}
	case map[string]any:
		for _, e := range v {
			checkJSONTypes(t, e)
		}
	default:
		t.Errorf("value %#v of type %T", v, v)
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct{ spec, msg string }{
		{``, `empty`},
		{"# only a comment\n", `empty`},
		{`[1]`, `want a mapping with keys init, on, default, got a list`},
		{"on: {A: .}\nreduce: .\n", `unknown key "reduce" (want init, on, default)`},
		{"on: {A: .}\nOn: {B: .}\n", `unknown key "On" (want init, on, default)`},
		{"on: [A, B]", `on: want a mapping of event type to jq expression, got a list`},
		{"on: .", `on: want a mapping of event type to jq expression, got a string`},
		{"on: {A: 1}", `on "A": want a jq expression (a string), got a number`},
		{"on: {A: {x: 1}}", `on "A": want a jq expression (a string), got a mapping`},
		{"on: {Deposited: .balance +}", `on "Deposited": invalid jq expression: unexpected EOF`},
		{"on: {Deposited: $amount}", `on "Deposited": invalid jq expression: variable not defined: $amount`},
		{"on: {\"\": .}", `on: invalid event type "": empty`},
		{"default: [1]", `default: want a jq expression (a string), got a list`},
		{"default: '. +'", `default: invalid jq expression: unexpected EOF`},
		{"init: 0", "no expressions: want an `on` mapping of event type to jq expression, or a `default`"},
		{"on:\ninit: 0", "no expressions: want an `on` mapping of event type to jq expression, or a `default`"},
		{"on: {A: .}\non: {B: .}", `line 2: key "on" written twice`},
		{"on: {A: ., A: .}", `on: line 1: key "A" written twice`},
		{"init: {[1]: 2}\non: {A: .}", `init: line 1: a key must be a scalar`},
		{"init: .nan\non: {A: .}", `init: line 1: NaN is not a JSON number`},
		{"init: !thing x\non: {A: .}", `init: line 1: unsupported YAML tag !thing`},
		{"init: &a [*a]\non: {A: .}", `nested deeper than 512 levels`},
		{"a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" +
			"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\ninit: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", `too large`},
		{"on: {A: .\n", `yaml: line 1: did not find expected ',' or '}'`},
	}
	for _, tc := range tests {
		_, err := ParseSpec([]byte(tc.spec))
		if err == nil {
			t.Errorf("ParseSpec(%q) succeeded, want %q", tc.spec, tc.msg)
			continue
		}
		if !errors.Is(err, ErrBadSpec) {
			t.Errorf("ParseSpec(%q) = %v, not an ErrBadSpec", tc.spec, err)
		}
		if msg := strings.TrimPrefix(err.Error(), "invalid fold spec: "); !strings.HasPrefix(msg, tc.msg) {
			t.Errorf("ParseSpec(%q) error\n got %q\nwant %q", tc.spec, msg, tc.msg)
		}
	}
}

// NewSpec takes what a config file decoder gives.
func TestNewSpec(t *testing.T) {
	doc := map[string]any{
		"init": map[any]any{"n": 0, 1: 2.5, true: []any{int64(3), uint64(4)}},
		"on":   map[string]any{"A": ".n += 1"},
	}
	s, err := NewSpec(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustEncode(t, s.init); got != `{"1":2.5,"n":0,"true":[3,4]}` {
		t.Errorf("init = %s", got)
	}
	checkJSONTypes(t, s.init)
	y, err := ParseSpec([]byte("init: {n: 0, 1: 2.5, true: [3, 4]}\non: {A: .n += 1}"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Reducer().Fingerprint() != y.Reducer().Fingerprint() {
		t.Error("NewSpec and ParseSpec of the same spec differ")
	}
	if _, err := NewSpec(map[string]any{"on": map[string]any{"A": "."}, "init": struct{}{}}); err == nil || !errors.Is(err, ErrBadSpec) {
		t.Errorf("NewSpec with a struct: %v", err)
	}
}

// FuzzParseSpec: a spec file is read from disk. ParseSpec must not panic,
// and a spec that parses has a JSON init and a stable fingerprint.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(accountSpec))
	f.Add([]byte(`{"init": {"n": [1, 2.5, "x", null, true]}, "on": {"A": ".n += 1"}, "default": "."}`))
	f.Add([]byte("init: &a {x: 1}\nv: {<<: *a, y: 0x1f}\non: {A: .}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSpec(b)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("error %v is not an ErrBadSpec", err)
			}
			return
		}
		checkJSONTypes(t, s.init)
		again, err := ParseSpec(b)
		if err != nil || again.Reducer().Fingerprint() != s.Reducer().Fingerprint() {
			t.Fatalf("second parse: %v, or a different fingerprint", err)
		}
		if _, err := codec.DecodeJSON([]byte(mustEncode(t, s.init))); err != nil && !strings.Contains(err.Error(), "nested deeper") {
			t.Fatalf("init does not round-trip: %v", err)
		}
	})
}
