package fold

import (
	"testing"

	"github.com/evtdev/evt/codec"
)

func mustDecode(t testing.TB, s string) any {
	t.Helper()
	v, err := codec.DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("DecodeJSON(%s): %v", s, err)
	}
	return v
}

func mustEncode(t testing.TB, v any) string {
	t.Helper()
	b, err := codec.EncodeJSON(v)
	if err != nil {
		t.Fatalf("EncodeJSON(%#v): %v", v, err)
	}
	return string(b)
}

func TestMergeReducer(t *testing.T) {
	tests := []struct {
		name string
		data []string
		want string
	}{
		{"none", nil, `null`},
		{"one", []string{`{"a":1}`}, `{"a":1}`},
		{"accumulates", []string{`{"a":1}`, `{"b":{"c":2}}`, `{"b":{"d":3},"a":null}`}, `{"b":{"c":2,"d":3}}`},
		{"numbers keep their text", []string{`{"n":1.50,"big":123456789012345678901234567890}`}, `{"big":123456789012345678901234567890,"n":1.50}`},
		{"non-object replaces", []string{`{"a":1}`, `[1,2]`, `{"b":2}`}, `{"b":2}`},
		{"null data resets", []string{`{"a":1}`, `null`}, `null`},
		{"escaped keys", []string{`{"a\u0062":1,"x":{"\n":2}}`, `{"ab":null,"x":{"\n":3}}`}, `{"x":{"\n":3}}`},
		{"duplicate keys: last wins", []string{`{"a":{"x":1}}`, `{"a":1,"a":{"b":1},"a":{"c":null,"d":2}}`}, `{"a":{"d":2,"x":1}}`},
	}
	r := NewMerge()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state, err := r.Init()
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range tc.data {
				ev := &Input{Position: uint64(i + 1), Stream: "s-1", Version: uint64(i + 1), Type: "T", Data: []byte(d)}
				if state, err = r.Step(state, ev); err != nil {
					t.Fatal(err)
				}
			}
			if got := mustEncode(t, state); got != tc.want {
				t.Errorf("state = %s, want %s", got, tc.want)
			}
			// The reducer (codec.MergeJSON) agrees with MergePatch.
			var alt any
			for _, d := range tc.data {
				alt = codec.MergePatch(alt, mustDecode(t, d))
			}
			if got := mustEncode(t, alt); got != tc.want {
				t.Errorf("MergePatch fold = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestMergeReducerBadData(t *testing.T) {
	r := NewMerge()
	ev := &Input{Position: 42, Stream: "account-7", Version: 3, Type: "Deposited", Data: []byte(`{"a":`)}
	_, err := r.Step(nil, ev)
	se, ok := err.(*StepError)
	if !ok {
		t.Fatalf("err = %#v, want *StepError", err)
	}
	if se.Stream != "account-7" || se.Position != 42 || se.Version != 3 || se.Type != "Deposited" {
		t.Errorf("StepError fields = %+v", se)
	}
	const want = "fold account-7 at position 42 (Deposited): event data: invalid JSON at byte 5: unexpected end of input"
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}
