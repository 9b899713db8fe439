package fold

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/evtdev/evt/codec"
)

// Specs here are JSON documents: fold takes a spec decoded (NewSpec);
// cmd/specfile reads YAML files into one and tests the YAML side.

const accountSpec = `{
  "init": {"balance": 0, "owner": null},
  "on": {
    "Opened": ".owner = $event.data.owner",
    "Deposited": ".balance += $event.data.amount",
    "Withdrawn": "if $event.data.amount > .balance then error(\"overdrawn by \\($event.data.amount - .balance)\") else .balance -= $event.data.amount end"
  }
}`

// jsonSpec builds the spec of a JSON text.
func jsonSpec(t testing.TB, text string) *Spec {
	t.Helper()
	s, err := NewSpec(mustDecode(t, text))
	if err != nil {
		t.Fatalf("NewSpec(%s): %v", text, err)
	}
	return s
}

func TestSpecReducer(t *testing.T) {
	tests := []struct {
		name string
		spec string
		evs  []*Input
		want string
	}{
		{"account", accountSpec, []*Input{
			event(1, "Opened", `{"owner":"ann"}`),
			event(2, "Deposited", `{"amount":50}`),
			event(3, "Withdrawn", `{"amount":20}`),
			event(4, "Renamed", `{"owner":"bob"}`), // not listed, no default: unchanged
		}, `{"balance":30,"owner":"ann"}`},
		{"counter", `{"init": {"n": 0}, "on": {"A": ".n += 1"}}`, []*Input{
			event(1, "A", `{}`), event(2, "B", `{}`), event(3, "A", `{}`),
		}, `{"n":2}`},
		{"default", `{"init": [], "on": {"A": ". + [\"a\"]"}, "default": ". + [$event.type]"}`, []*Input{
			event(1, "A", `{}`), event(2, "B", `{}`), event(3, "C", `{}`),
		}, `["a","B","C"]`},
		{"default alone", `{"default": "(. // 0) + 1"}`, []*Input{event(1, "A", `{}`), event(2, "B", `{}`)}, `2`},
		{"no init is null", `{"on": {"A": "."}}`, []*Input{event(1, "A", `{}`)}, `null`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := foldAll(t, jsonSpec(t, tc.spec).Reducer(), tc.evs...)
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
	_, err := foldAll(t, jsonSpec(t, accountSpec).Reducer(),
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
	r := jsonSpec(t, `{"init": {"a": [1]}, "on": {"A": "."}}`).Reducer()
	st, _ := r.Init()
	st.(map[string]any)["a"].([]any)[0] = "changed"
	st.(map[string]any)["b"] = 2
	st, _ = r.Init()
	if got := mustEncode(t, st); got != `{"a":[1]}` {
		t.Errorf("Init = %s", got)
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

// The errors of a spec's meaning; cmd/specfile tests those of YAML.
func TestNewSpecErrors(t *testing.T) {
	tests := []struct{ spec, msg string }{
		{`[1]`, `want a mapping with keys init, on, default, got a list`},
		{`{"on": {"A": "."}, "reduce": "."}`, `unknown key "reduce" (want init, on, default)`},
		{`{"on": {"A": "."}, "On": {"B": "."}}`, `unknown key "On" (want init, on, default)`},
		{`{"on": ["A", "B"]}`, `on: want a mapping of event type to jq expression, got a list`},
		{`{"on": "."}`, `on: want a mapping of event type to jq expression, got a string`},
		{`{"on": {"A": 1}}`, `on "A": want a jq expression (a string), got a number`},
		{`{"on": {"A": {"x": 1}}}`, `on "A": want a jq expression (a string), got a mapping`},
		{`{"on": {"Deposited": ".balance +"}}`, `on "Deposited": invalid jq expression: unexpected EOF`},
		{`{"on": {"Deposited": "$amount"}}`, `on "Deposited": invalid jq expression: variable not defined: $amount`},
		{`{"on": {"": "."}}`, `on: invalid event type "": empty`},
		{`{"default": [1]}`, `default: want a jq expression (a string), got a list`},
		{`{"default": ". +"}`, `default: invalid jq expression: unexpected EOF`},
		{`{"init": 0}`, "no expressions: want an `on` mapping of event type to jq expression, or a `default`"},
		{`{"on": null, "init": 0}`, "no expressions: want an `on` mapping of event type to jq expression, or a `default`"},
	}
	for _, tc := range tests {
		_, err := NewSpec(mustDecode(t, tc.spec))
		if err == nil {
			t.Errorf("NewSpec(%s) succeeded, want %q", tc.spec, tc.msg)
			continue
		}
		if !errors.Is(err, ErrBadSpec) {
			t.Errorf("NewSpec(%s) = %v, not an ErrBadSpec", tc.spec, err)
		}
		if msg := strings.TrimPrefix(err.Error(), "invalid fold spec: "); msg != tc.msg {
			t.Errorf("NewSpec(%s) error\n got %q\nwant %q", tc.spec, msg, tc.msg)
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
	j := jsonSpec(t, `{"init": {"n": 0, "1": 2.5, "true": [3, 4]}, "on": {"A": ".n += 1"}}`)
	if s.Reducer().Fingerprint() != j.Reducer().Fingerprint() {
		t.Error("NewSpec of a config's document and of the same spec in JSON differ")
	}
	if _, err := NewSpec(map[string]any{"on": map[string]any{"A": "."}, "init": struct{}{}}); err == nil || !errors.Is(err, ErrBadSpec) {
		t.Errorf("NewSpec with a struct: %v", err)
	}
	if _, err := NewSpec(map[string]any{"on": map[string]any{"A": "."}, "init": json.Number("01")}); err == nil || !strings.Contains(err.Error(), `init: invalid number "01"`) {
		t.Errorf("NewSpec with a bad json.Number: %v", err)
	}
}

// FuzzNewSpec: a spec decoded from any JSON either fails with ErrBadSpec
// or has a JSON init that round-trips and a stable fingerprint.
func FuzzNewSpec(f *testing.F) {
	f.Add([]byte(accountSpec))
	f.Add([]byte(`{"init": {"n": [1, 2.5, "x", null, true]}, "on": {"A": ".n += 1"}, "default": "."}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := codec.DecodeJSON(b)
		if err != nil {
			return
		}
		s, err := NewSpec(doc)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("error %v is not an ErrBadSpec", err)
			}
			return
		}
		checkJSONTypes(t, s.init)
		again, err := NewSpec(doc)
		if err != nil || again.Reducer().Fingerprint() != s.Reducer().Fingerprint() {
			t.Fatalf("second build: %v, or a different fingerprint", err)
		}
		if _, err := codec.DecodeJSON([]byte(mustEncode(t, s.init))); err != nil {
			t.Fatalf("init does not round-trip: %v", err)
		}
	})
}
