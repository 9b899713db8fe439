package specfile

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/fold"
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

func mustParse(t testing.TB, spec string) *fold.Spec {
	t.Helper()
	s, err := Parse([]byte(spec))
	if err != nil {
		t.Fatalf("Parse(%q): %v", spec, err)
	}
	return s
}

// initOf is the spec's init state, encoded.
func initOf(t testing.TB, s *fold.Spec) (any, string) {
	t.Helper()
	v, err := s.Reducer().Init()
	if err != nil {
		t.Fatal(err)
	}
	b, err := codec.EncodeJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return v, string(b)
}

// foldTypes folds one event of each type, in order, from the spec's init.
func foldTypes(t *testing.T, s *fold.Spec, data string, types ...string) string {
	t.Helper()
	r := s.Reducer()
	state, err := r.Init()
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range types {
		ev := &fold.Input{Position: uint64(i + 1), Stream: "s-1", Version: uint64(i + 1), Type: typ,
			Time: time.Unix(0, 0), ID: "id", Data: []byte(data)}
		if state, err = r.Step(state, ev); err != nil {
			t.Fatal(err)
		}
	}
	b, err := codec.EncodeJSON(state)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParse(t *testing.T) {
	if got := foldTypes(t, mustParse(t, accountSpec), `{"amount":50,"owner":"ann"}`, "Opened", "Deposited", "Renamed"); got != `{"balance":50,"owner":"ann"}` {
		t.Errorf("account = %s", got)
	}
	if got := foldTypes(t, mustParse(t, "{\n\t\"on\": {\n\t\t\"A\": \". + 1\"\n\t},\n\t\"init\": 0\n}\n"), `{}`, "A"); got != `1` {
		t.Errorf("JSON indented with tabs = %s", got)
	}
	if got := foldTypes(t, mustParse(t, "init: []\non:\n  A: . + [\"a\"]\ndefault: . + [$event.type]"), `{}`, "A", "B"); got != `["a","B"]` {
		t.Errorf("default = %s", got)
	}
	// Keys YAML would read as other scalars are their text.
	s := mustParse(t, "on: {true: '\"t\"', 1: '\"one\"', null: '\"n\"', 'on': '\"on\"'}")
	for _, typ := range []string{"true", "1", "null", "on"} {
		want := map[string]string{"true": `"t"`, "1": `"one"`, "null": `"n"`, "on": `"on"`}[typ]
		if got := foldTypes(t, s, `{}`, typ); got != want {
			t.Errorf("type %s = %s, want %s", typ, got, want)
		}
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{`1.10`, `1.10`}, // the number's text, as codec.DecodeJSON keeps it
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
		s, err := Parse([]byte("on: {A: .}\ninit: " + tc.yaml))
		if err != nil {
			t.Errorf("init: %s: %v", tc.yaml, err)
			continue
		}
		v, got := initOf(t, s)
		if got != tc.want {
			t.Errorf("init: %s = %s, want %s", tc.yaml, got, tc.want)
		}
		checkJSONTypes(t, v)
	}
}

// checkJSONTypes checks that v holds only what codec.DecodeJSON returns.
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

func TestParseErrors(t *testing.T) {
	tests := []struct{ spec, msg string }{
		{``, `empty`},
		{"# only a comment\n", `empty`},
		{`[1]`, `want a mapping with keys init, on, default, got a list`},
		{"on: {A: .}\nreduce: .\n", `unknown key "reduce" (want init, on, default)`},
		{"on: [A, B]", `on: want a mapping of event type to jq expression, got a list`},
		{"on: {A: 1}", `on "A": want a jq expression (a string), got a number`},
		{"on: {Deposited: .balance +}", `on "Deposited": invalid jq expression: unexpected EOF`},
		{"on:\ninit: 0", "no expressions: want an `on` mapping of event type to jq expression, or a `default`"},
		{"on: {A: .}\non: {B: .}", `line 2: key "on" written twice`},
		{"on: {A: ., A: .}", `on: line 1: key "A" written twice`},
		{"init: {[1]: 2}\non: {A: .}", `init: line 1: a key must be a scalar`},
		{"init: .nan\non: {A: .}", `init: line 1: NaN is not a JSON number`},
		{"init: -.inf\non: {A: .}", `init: line 1: -Inf is not a JSON number`},
		{"init: !thing x\non: {A: .}", `init: line 1: unsupported YAML tag !thing`},
		{"init: &a [*a]\non: {A: .}", `nested deeper than 512 levels`},
		{"a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" +
			"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\ninit: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", `too large`},
		{"on: {A: .\n", `yaml: line 1: did not find expected ',' or '}'`},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.spec))
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want %q", tc.spec, tc.msg)
			continue
		}
		if !errors.Is(err, fold.ErrBadSpec) {
			t.Errorf("Parse(%q) = %v, not an ErrBadSpec", tc.spec, err)
		}
		if msg := strings.TrimPrefix(err.Error(), "invalid fold spec: "); !strings.HasPrefix(msg, tc.msg) {
			t.Errorf("Parse(%q) error\n got %q\nwant %q", tc.spec, msg, tc.msg)
		}
	}
}

// Comments, layout, key order and YAML vs JSON do not change what a spec
// computes, nor does reading it from a config file (fold.NewSpec).
func TestParseFingerprints(t *testing.T) {
	fp := func(s string) string { return mustParse(t, s).Reducer().Fingerprint() }
	same := [][2]string{
		{fp("init: 0\non: {A: . + 1}"), fp(`{"on": {"A": ". + 1"}, "init": 0}`)},
		{fp("# comment\non:\n  A: . + 1\n  B: .\ninit: 0\n"), fp("init: 0\non: {B: ., A: . + 1}")},
		{fp("on: {A: .}"), fp("init: null\non: {A: .}")},
	}
	for _, p := range same {
		if p[0] != p[1] {
			t.Errorf("fingerprints differ: %s, %s", p[0], p[1])
		}
	}
	doc := map[string]any{
		"init": map[any]any{"n": 0, 1: 2.5, true: []any{int64(3), uint64(4)}},
		"on":   map[string]any{"A": ".n += 1"},
	}
	s, err := fold.NewSpec(doc)
	if err != nil {
		t.Fatal(err)
	}
	if s.Reducer().Fingerprint() != fp("init: {n: 0, 1: 2.5, true: [3, 4]}\non: {A: .n += 1}") {
		t.Error("fold.NewSpec and Parse of the same spec differ")
	}
}

// FuzzParse: a spec file is read from disk. Parse must not panic, and a
// spec that parses has a JSON init and a stable fingerprint.
func FuzzParse(f *testing.F) {
	f.Add([]byte(accountSpec))
	f.Add([]byte(`{"init": {"n": [1, 2.5, "x", null, true]}, "on": {"A": ".n += 1"}, "default": "."}`))
	f.Add([]byte("init: &a {x: 1}\nv: {<<: *a, y: 0x1f}\non: {A: .}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			if !errors.Is(err, fold.ErrBadSpec) {
				t.Fatalf("error %v is not an ErrBadSpec", err)
			}
			return
		}
		v, enc := initOf(t, s)
		checkJSONTypes(t, v)
		again, err := Parse(b)
		if err != nil || again.Reducer().Fingerprint() != s.Reducer().Fingerprint() {
			t.Fatalf("second parse: %v, or a different fingerprint", err)
		}
		if _, err := codec.DecodeJSON([]byte(enc)); err != nil && !strings.Contains(err.Error(), "nested deeper") {
			t.Fatalf("init does not round-trip: %v", err)
		}
	})
}
