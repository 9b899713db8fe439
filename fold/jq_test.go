package fold

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
)

// event is a test event of stream s-1 at version v (position 100+v).
func event(v uint64, typ, data string) *Input {
	return &Input{
		Position: 100 + v,
		Stream:   "s-1",
		Version:  v,
		Type:     typ,
		Time:     time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)),
		ID:       "id-" + typ,
		Data:     []byte(data),
	}
}

// foldAll folds evs with r from r.Init() and returns the encoded state.
func foldAll(t *testing.T, r Reducer, evs ...*Input) (string, error) {
	t.Helper()
	state, err := r.Init()
	if err != nil {
		t.Fatal(err)
	}
	state, err = Fold(r, state, func(yield func(*Input, error) bool) {
		for _, ev := range evs {
			if !yield(ev, nil) {
				return
			}
		}
	})
	if err != nil {
		return "", err
	}
	return mustEncode(t, state), nil
}

func TestJQReducer(t *testing.T) {
	account := []*Input{
		event(1, "Opened", `{"owner":"ann"}`),
		event(2, "Deposited", `{"amount":50}`),
		event(3, "Withdrawn", `{"amount":20}`),
		event(4, "Deposited", `{"amount":5.5}`),
	}
	tests := []struct {
		name string
		expr string
		evs  []*Input
		want string
	}{
		{"no events", `.`, nil, `null`},
		{"balance", benchReduce, account[1:], `35.5`},
		{"count", `. + 1`, account, `4`},
		{"merge by hand", `(. // {}) * $event.data`, account, `{"amount":5.5,"owner":"ann"}`},
		{"last of several results", `(. // 0) | (. + 1, . + 10)`, account, `40`},
		{"envelope", `$event | del(.data)`, account[:1], `{"id":"id-Opened","position":101,"stream":"s-1","time":"2026-01-02T02:04:05.000000006Z","type":"Opened","version":1}`},
		{"metadata when present", `$event.metadata`, []*Input{{Stream: "s-1", Type: "T", Data: []byte(`1`), Metadata: []byte(`{"c":"x"}`)}}, `{"c":"x"}`},
		{"no metadata key when empty", `$event | has("metadata")`, account[:1], `false`},
		{"exact big numbers", `$event.data.n`, []*Input{{Data: []byte(`{"n":123456789012345678901234567890}`)}}, `123456789012345678901234567890`},
		{"no environment", `$ENV | length`, account[:1], `0`},
		{"without $event the data is not read", `. + 1`, []*Input{{Data: []byte(`not json`)}}, `1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewJQ(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := foldAll(t, r, tc.evs...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("state = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestJQReducerErrors(t *testing.T) {
	evs := []*Input{
		event(1, "Deposited", `{"amount":50}`),
		event(2, "Deposited", `{"amount":"lots"}`),
		event(3, "Deposited", `{"amount":1}`),
	}
	tests := []struct {
		name string
		expr string
		at   uint64 // version of the failing event
		is   error
		msg  string
	}{
		{"runtime error", `(. // 0) + $event.data.amount`, 2, nil,
			`fold s-1 at position 102 (Deposited): jq: cannot add: number (50) and string ("lots")`},
		{"error()", `if $event.version == 3 then error("no") else . end`, 3, nil,
			`fold s-1 at position 103 (Deposited): jq: error: no`},
		{"no result", `if $event.version == 2 then empty else 1 end`, 2, ErrNoState,
			`fold s-1 at position 102 (Deposited): jq: produced no state`},
		{"bad data", `$event`, 1, nil,
			`fold s-1 at position 101 (Deposited): event data: invalid JSON at byte 0: unexpected 'x'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewJQ(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			in := evs
			if tc.name == "bad data" {
				in = []*Input{event(1, "Deposited", `x`)}
			}
			_, err = foldAll(t, r, in...)
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *StepError", err)
			}
			if se.Stream != "s-1" || se.Version != tc.at || se.Position != 100+tc.at || se.Type != "Deposited" {
				t.Errorf("StepError = %+v", se)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
			if err.Error() != tc.msg {
				t.Errorf("err = %q\nwant  %q", err, tc.msg)
			}
		})
	}
}

func TestJQTimeout(t *testing.T) {
	for _, expr := range []string{`def f: f; f`, `repeat(.)`, `last(range(1e18))`} {
		r, err := NewJQ(expr, WithTimeout(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = r.Step(nil, event(1, "T", `{}`))
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("%s: err = %v, want ErrTimeout", expr, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: stopped after %s", expr, d)
		}
		const want = "fold s-1 at position 101 (T): jq: timed out after 20ms on one event (does the expression ever end?)"
		if err.Error() != want {
			t.Errorf("err = %q\nwant  %q", err, want)
		}
	}
}

// After a step that timed out, the next ones run normally: the expired
// context is not reused.
func TestJQAfterTimeout(t *testing.T) {
	r, err := NewJQ(`if $event.version == 2 then repeat(.) else (. // 0) + 1 end`, WithTimeout(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Step(nil, event(2, "T", `{}`)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	var state any
	for i := 0; i < 100; i++ {
		if state, err = r.Step(state, event(1, "T", `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustEncode(t, state); got != "100" {
		t.Errorf("state = %s", got)
	}
}

// The reducers keep no per-call state: one may serve several folds at
// once (run with -race).
func TestJQConcurrent(t *testing.T) {
	r, err := NewJQ(benchReduce, WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]string, 4)
	for g := range results {
		wg.Go(func() {
			var state any
			for i := 0; i < 200; i++ {
				var err error
				if state, err = r.Step(state, event(1, "Deposited", `{"amount":2}`)); err != nil {
					t.Error(err)
					return
				}
			}
			results[g] = mustEncode(t, state)
		})
	}
	wg.Wait()
	for _, got := range results {
		if got != "400" {
			t.Errorf("state = %s, want 400", got)
		}
	}
}

func TestFormatTime(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 29, 1, 30, 0, 5, time.FixedZone("y", -9*3600)),
		time.Unix(0, 0),
	}
	for i := int64(0); i < 1000; i++ {
		times = append(times, time.Unix(0, i*7919*1e12+i*104729))
	}
	for _, tm := range times {
		if got, want := formatTime(tm), tm.UTC().Format(codec.TimeFormat); got != want {
			t.Errorf("formatTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestNewJQInvalid(t *testing.T) {
	for _, expr := range []string{`.a +`, `$nope`, `foo(1)`, `include "x"; .`} {
		if _, err := NewJQ(expr); err == nil || !strings.HasPrefix(err.Error(), "invalid jq expression: ") {
			t.Errorf("NewJQ(%q) error = %v", expr, err)
		}
	}
}

func TestFingerprints(t *testing.T) {
	jq := func(expr string) string {
		r, err := NewJQ(expr)
		if err != nil {
			t.Fatal(err)
		}
		return r.Fingerprint()
	}
	spec := func(s string) string { return jsonSpec(t, s).Reducer().Fingerprint() }
	same := [][2]string{
		{NewMerge().Fingerprint(), "merge"},
		{jq(`. + 1`), jq(`. + 1`)},
		{jq(`. + 1`), "jq:" + sha256Hex([]byte(`. + 1`))},
		{spec(`{"init": 0, "on": {"A": ". + 1"}}`), spec(`{"on": {"A": ". + 1"}, "init": 0}`)},
		{spec(`{"on": {"A": ". + 1", "B": "."}, "init": 0}`), spec(`{"init": 0, "on": {"B": ".", "A": ". + 1"}}`)},
		{spec(`{"on": {"A": "."}}`), spec(`{"init": null, "on": {"A": "."}}`)},
	}
	for _, p := range same {
		if p[0] != p[1] {
			t.Errorf("fingerprints differ: %s, %s", p[0], p[1])
		}
	}
	all := []string{
		NewMerge().Fingerprint(),
		jq(`. + 1`), jq(`.+1`), jq(`. + 2`),
		spec(`{"on": {"A": ". + 1"}}`), spec(`{"on": {"A": ". + 2"}}`), spec(`{"on": {"B": ". + 1"}}`),
		spec(`{"init": 0, "on": {"A": ". + 1"}}`), spec(`{"init": 1, "on": {"A": ". + 1"}}`), spec(`{"init": {}, "on": {"A": ". + 1"}}`),
		spec(`{"on": {"A": ". + 1"}, "default": "."}`), spec(`{"default": ". + 1"}`),
	}
	seen := map[string]int{}
	for i, f := range all {
		if j, dup := seen[f]; dup {
			t.Errorf("reducers %d and %d share fingerprint %s", j, i, f)
		}
		seen[f] = i
	}
	// Options do not change what is computed.
	r1, _ := NewJQ(`.`, WithTimeout(time.Second))
	if r1.Fingerprint() != jq(`.`) {
		t.Error("the timeout changed the fingerprint")
	}
}
