package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

// stdDecode is the reference: encoding/json with UseNumber.
func stdDecode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err == nil {
		return nil, errors.New("data after value")
	}
	return v, nil
}

func TestDecodeJSON(t *testing.T) {
	good := []string{
		`null`, `true`, `false`, `0`, `-0`, `1.5e-7`, `-12E+3`, `123456789012345678901234567890`,
		`""`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\ud83d\ude00\ud800x"`, `"é😀"`,
		`[]`, `{}`, `[1,[2,[3,{}]]]`, `{"a":{"b":[null,true]},"a":2}`,
		" \t\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \r\n",
		`"a long string with more than eight bytes of plain text and then \u0041"`,
	}
	for _, s := range good {
		got, err := DecodeJSON([]byte(s))
		if err != nil {
			t.Errorf("DecodeJSON(%q): %v", s, err)
			continue
		}
		want, err := stdDecode([]byte(s))
		if err != nil {
			t.Fatalf("reference rejects %q: %v", s, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeJSON(%q) = %#v, want %#v", s, got, want)
		}
	}
	bad := []struct{ in, msg string }{
		{``, "invalid JSON at byte 0: unexpected end of input"},
		{`{"a":1,}`, "invalid JSON at byte 7: unexpected '}', expected object key"},
		{`[1 2]`, "invalid JSON at byte 3: unexpected '2', expected ',' or ']'"},
		{`01`, "invalid JSON at byte 1: leading zero in number"},
		{`1.`, "invalid JSON at byte 2: unexpected end of input after decimal point, expected digit"},
		{`-`, "invalid JSON at byte 1: unexpected end of input in number"},
		{`"a`, "invalid JSON at byte 2: unexpected end of input in string"},
		{"\"\x01\"", "invalid JSON at byte 1: control character 0x01 in string"},
		{"\"\xff\"", "invalid JSON at byte 1: invalid UTF-8 in string"},
		{`"\x"`, "invalid JSON at byte 1: invalid escape \\'x'"},
		{`"\u12g4"`, "invalid JSON at byte 5: invalid \\u escape: 'g' is not a hex digit"},
		{`nul`, "invalid JSON at byte 3: unexpected end of input in literal null"},
		{`{"a" 1}`, "invalid JSON at byte 5: unexpected '1', expected ':'"},
		{`1 2`, "invalid JSON at byte 2: unexpected '2' after top-level value"},
		{strings.Repeat("[", MaxJSONDepth+1), "invalid JSON at byte 512: nested deeper than 512 levels"},
	}
	for _, tc := range bad {
		_, err := DecodeJSON([]byte(tc.in))
		if err == nil || err.Error() != tc.msg {
			t.Errorf("DecodeJSON(%q) error = %v, want %s", tc.in, err, tc.msg)
		}
		if !errors.Is(err, ErrBadJSON) {
			t.Errorf("DecodeJSON(%q) error does not match ErrBadJSON", tc.in)
		}
	}
}

func TestEncodeJSON(t *testing.T) {
	big, _ := new(big.Int).SetString("-123456789012345678901234567890", 10)
	tests := []struct {
		in   any
		want string
	}{
		{nil, `null`},
		{true, `true`},
		{map[string]any{"b": 1, "a": []any{"x", false, nil}, "": json.Number("1.50"), "é": 2.5}, `{"":1.50,"a":["x",false,null],"b":1,"é":2.5}`},
		{"<&>\u2028\n\"\\\x01", `"<&>` + "\u2028" + `\n\"\\\u0001"`},
		{1e21, `1e+21`},
		{1e20, `100000000000000000000`},
		{1e-7, `1e-7`},
		{0.000001, `0.000001`},
		{math.Copysign(0, -1), `-0`},
		{math.NaN(), `null`},
		{math.Inf(1), `1.7976931348623157e+308`},
		{math.Inf(-1), `-1.7976931348623157e+308`},
		{big, `-123456789012345678901234567890`},
		{-7, `-7`},
		{map[string]any{}, `{}`},
		{[]any{}, `[]`},
	}
	for _, tc := range tests {
		got, err := EncodeJSON(tc.in)
		if err != nil {
			t.Errorf("EncodeJSON(%#v): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("EncodeJSON(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
	// encoding/json agrees on floats and key order.
	for _, f := range []float64{0, 1, -1.5, 1e-7, 123456.789, 1e21, 1e300, 5e-324, 0.1 + 0.2} {
		want, _ := json.Marshal(f)
		if got := mustEncode(t, f); got != string(want) {
			t.Errorf("EncodeJSON(%v) = %s, encoding/json %s", f, got, want)
		}
	}
	for _, bad := range []any{json.Number("1."), json.Number(""), struct{}{}, []any{int64(1)}, map[string]any{"a": uint8(1)}} {
		if got, err := AppendJSON([]byte("x"), bad); err == nil || string(got) != "x" {
			t.Errorf("AppendJSON(%#v) = %q, %v; want an error and dst unchanged", bad, got, err)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, s := range []string{`{"b":[1,{"c":"\u00e9\n"}],"a":1.50e3,"n":null}`, `"x"`, `[[],{}]`} {
		v := mustDecode(t, s)
		b := mustEncode(t, v)
		if w := mustEncode(t, mustDecode(t, b)); w != b {
			t.Errorf("round trip of %s: %s then %s", s, b, w)
		}
		if want, _ := json.Marshal(v); b != string(want) {
			t.Errorf("EncodeJSON(%s) = %s, encoding/json %s", s, b, want)
		}
	}
}

// FuzzDecodeJSON checks the decoder against the two references it
// promises to agree with: it accepts exactly what AppendCompact accepts,
// and then returns what encoding/json with UseNumber returns. The value
// re-encodes consistently (EncodeJSON∘DecodeJSON is idempotent), and
// MergeJSON is MergePatch of the decoded patch, leaving its target alone
// when it fails.
func FuzzDecodeJSON(f *testing.F) {
	for _, tc := range rfc7396 {
		f.Add([]byte(tc.target), []byte(tc.patch))
	}
	f.Add([]byte(`{"amount":5688,"note":"utilities gift"}`), []byte(`{"amount":1,"x":{"y":null,"z":[{"a":null}]}}`))
	f.Add([]byte(`{"a":{"b":{"c":1,"e":2}}}`), []byte(`{"a":{"b":1,"b":{"c":null}},"a":{"d":2},"\u0061":{"f":3}}`))
	f.Add([]byte(`"\ud800\udc00\ud800"`), []byte(` { "a\u0000" : -0.0e+0 } `))
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`{"a":{"c":2},"d":[1,{"e":`))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		got, err := DecodeJSON(patch)
		_, cerr := AppendCompact(nil, patch)
		if (err == nil) != (cerr == nil) {
			t.Fatalf("DecodeJSON error %v, AppendCompact error %v", err, cerr)
		}
		tv, terr := DecodeJSON(target)
		if terr != nil {
			tv = nil
		}
		if err != nil {
			if !errors.Is(err, ErrBadJSON) {
				t.Fatalf("DecodeJSON error %v is not an ErrBadJSON", err)
			}
			before := mustEncode(t, tv)
			if _, merr := MergeJSON(tv, patch); merr == nil {
				t.Fatalf("MergeJSON accepts what DecodeJSON rejects (%v)", err)
			}
			if after := mustEncode(t, tv); after != before {
				t.Fatalf("failed MergeJSON changed its target from %s to %s", before, after)
			}
			return
		}
		want, err := stdDecode(patch)
		if err != nil {
			t.Fatalf("encoding/json rejects what DecodeJSON accepts: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeJSON = %#v\nencoding/json %#v", got, want)
		}
		enc := mustEncode(t, got)
		if again := mustEncode(t, mustDecode(t, enc)); again != enc {
			t.Fatalf("EncodeJSON not stable: %s then %s", enc, again)
		}

		want = MergePatch(deepCopy(tv), got)
		if mustEncode(t, got) != enc {
			t.Fatalf("MergePatch modified the patch")
		}
		merged, err := MergeJSON(deepCopy(tv), patch)
		if err != nil {
			t.Fatalf("MergeJSON: %v", err)
		}
		if a, b := mustEncode(t, merged), mustEncode(t, want); a != b {
			t.Fatalf("MergeJSON = %s, MergePatch = %s", a, b)
		}
	})
}

// deepCopy copies the objects and arrays of a decoded value.
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
	v, err := DecodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("DecodeJSON(%s): %v", s, err)
	}
	return v
}

func mustEncode(t testing.TB, v any) string {
	t.Helper()
	b, err := EncodeJSON(v)
	if err != nil {
		t.Fatalf("EncodeJSON(%#v): %v", v, err)
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
			got, err := MergeJSON(mustDecode(t, tc.target), []byte(tc.patch))
			if err != nil {
				t.Fatal(err)
			}
			if g := mustEncode(t, got); g != want {
				t.Errorf("MergeJSON = %s, want %s", g, want)
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

// A patch that is not JSON leaves the target as it was, even when the
// error comes after members that would have streamed into it.
func TestMergeJSONBadPatchLeavesTarget(t *testing.T) {
	for _, patch := range []string{`{"a":{"c":2},"d":`, `{"a":{"c":2}}x`, `{"a":{"c":2},"a":{"x":}}`, `{"a":{"c":"\xff"}}`} {
		target := mustDecode(t, `{"a":{"b":1}}`)
		if _, err := MergeJSON(target, []byte(patch)); !errors.Is(err, ErrBadJSON) {
			t.Errorf("MergeJSON(%s) error = %v, want invalid JSON", patch, err)
		}
		if got := mustEncode(t, target); got != `{"a":{"b":1}}` {
			t.Errorf("MergeJSON(%s) changed the target to %s", patch, got)
		}
	}
}

// benchData is one event's data as the benchmark data set has it
// (../shared/bench, tools/cmd/gen), as in fold's benchmarks: 200-byte
// lines, a 130-byte data.
const benchData = `{"amount":5688,"note":"utilities gift refund interest invoice travel rent bonus interest rent transfer salary utilities interest invoice groceri"}`

func BenchmarkDecodeJSON(b *testing.B) {
	data := []byte(benchData)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSONEncodingJSON(b *testing.B) {
	data := []byte(benchData)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stdDecode(data); err != nil {
			b.Fatal(err)
		}
	}
}
