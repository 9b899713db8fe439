package fold

import (
	"reflect"
	"testing"
)

// rfc7396 is every example of RFC 7396: Appendix A, then the one of
// section 3.
var rfc7396 = []struct{ target, patch, want string }{
	{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
	{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
	{`{"a":"b"}`, `{"a":null}`, `{}`},
	{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
	{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
	{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
	{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
	{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
	{`["a","b"]`, `["c","d"]`, `["c","d"]`},
	{`{"a":"b"}`, `["c"]`, `["c"]`},
	{`{"a":"foo"}`, `null`, `null`},
	{`{"a":"foo"}`, `"bar"`, `"bar"`},
	{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
	{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
	{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	{
		`{"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},"tags":["example","sample"],"content":"This will be unchanged"}`,
		`{"title":"Hello!","phoneNumber":"+01-123-456-7890","author":{"familyName":null},"tags":["example"]}`,
		`{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}`,
	},
}

func mustDecode(t testing.TB, s string) any {
	t.Helper()
	v, err := Decode([]byte(s))
	if err != nil {
		t.Fatalf("Decode(%s): %v", s, err)
	}
	return v
}

func mustEncode(t testing.TB, v any) string {
	t.Helper()
	b, err := Encode(v)
	if err != nil {
		t.Fatalf("Encode(%#v): %v", v, err)
	}
	return string(b)
}

// canonical re-encodes a JSON text canonically, for comparisons.
func canonical(t testing.TB, s string) string {
	t.Helper()
	return mustEncode(t, mustDecode(t, s))
}

func TestMergePatchRFC7396(t *testing.T) {
	for _, tc := range rfc7396 {
		t.Run(tc.target+"+"+tc.patch, func(t *testing.T) {
			want := canonical(t, tc.want)
			patch := mustDecode(t, tc.patch)
			got := MergePatch(mustDecode(t, tc.target), patch)
			if g := mustEncode(t, got); g != want {
				t.Errorf("MergePatch = %s, want %s", g, want)
			}
			if p := mustEncode(t, patch); p != canonical(t, tc.patch) {
				t.Errorf("patch modified: %s", p)
			}
			checkNoSharedObjects(t, got, patch)

			// The streaming form the merge reducer uses.
			got, err := mergeJSON(mustDecode(t, tc.target), []byte(tc.patch))
			if err != nil {
				t.Fatal(err)
			}
			if g := mustEncode(t, got); g != want {
				t.Errorf("mergeJSON = %s, want %s", g, want)
			}
		})
	}
}

// checkNoSharedObjects checks the aliasing promise of MergePatch: no
// object reached from result's root through objects only is one of
// patch's objects, so merging into result later cannot modify patch.
func checkNoSharedObjects(t *testing.T, result, patch any) {
	t.Helper()
	patchObjects := map[uintptr]bool{}
	var collect func(v any)
	collect = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			patchObjects[reflect.ValueOf(v).Pointer()] = true
			for _, e := range v {
				collect(e)
			}
		case []any:
			for _, e := range v {
				collect(e)
			}
		}
	}
	collect(patch)
	var check func(v any)
	check = func(v any) {
		if m, ok := v.(map[string]any); ok {
			if patchObjects[reflect.ValueOf(m).Pointer()] {
				t.Errorf("result shares object %v with the patch", m)
			}
			for _, e := range m {
				check(e)
			}
		}
	}
	check(result)
}

func TestMergePatchInPlace(t *testing.T) {
	target := mustDecode(t, `{"a":{"b":1}}`).(map[string]any)
	inner := target["a"].(map[string]any)
	got := MergePatch(target, mustDecode(t, `{"a":{"c":2}}`)).(map[string]any)
	if reflect.ValueOf(got).Pointer() != reflect.ValueOf(target).Pointer() {
		t.Error("MergePatch did not return target itself")
	}
	if reflect.ValueOf(got["a"]).Pointer() != reflect.ValueOf(inner).Pointer() {
		t.Error("MergePatch replaced a nested object instead of patching it")
	}
	if g := mustEncode(t, inner); g != `{"b":1,"c":2}` {
		t.Errorf("inner = %s", g)
	}
}

// A patch's arrays may be shared with the result, but folding more
// patches into that result never changes the first patch.
func TestMergePatchLaterPatchesLeavePatchAlone(t *testing.T) {
	p1 := mustDecode(t, `{"a":{"b":[{"c":1}]},"d":{"e":{"f":1}}}`)
	before := mustEncode(t, p1)
	s := MergePatch(nil, p1)
	s = MergePatch(s, mustDecode(t, `{"a":{"b":null,"x":1},"d":{"e":{"f":null,"g":2}}}`))
	s = MergePatch(s, mustDecode(t, `{"d":{"e":null}}`))
	if got := mustEncode(t, p1); got != before {
		t.Errorf("first patch changed to %s", got)
	}
	if got := mustEncode(t, s); got != `{"a":{"x":1},"d":{}}` {
		t.Errorf("state = %s", got)
	}
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
			// The reducer (mergeJSON) agrees with MergePatch.
			var alt any
			for _, d := range tc.data {
				alt = MergePatch(alt, mustDecode(t, d))
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

func TestUniqueKeys(t *testing.T) {
	many := `{"k0":0`
	for i := 1; i < 40; i++ {
		many += `,"k` + string(rune('0'+i/10)) + string(rune('0'+i%10)) + `":0`
	}
	tests := []struct {
		in   string
		want bool
	}{
		{`{"a":1,"b":{"a":2,"c":[{"a":1,"a":2}]},"c":"a\"b"}`, true},
		{`[{"a":1,"a":2}]`, true}, // not streamed
		{`{"a":[1,{"x":1,"x":2}],"b":"{\"a\":1}"}`, true},
		{` { "a" : 1 , "b" : { "c" : 2 } } `, true},
		{`{"a":1,"a":2}`, false},
		{`{"a":1,"b":{"c":1,"d":{"e":{},"e":{}}}}`, false},
		{`{"a":1,"\u0061":2}`, false}, // escaped keys take the slow path
		{many + `}`, true},
		{many + `,"k17":1}`, false}, // past the pairwise comparisons
		{`{"a":`, false},
	}
	for _, tc := range tests {
		if got := uniqueKeys([]byte(tc.in)); got != tc.want {
			t.Errorf("uniqueKeys(%s) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
