package fold

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"github.com/evtdev/evt/codec"
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

func TestDecode(t *testing.T) {
	good := []string{
		`null`, `true`, `false`, `0`, `-0`, `1.5e-7`, `-12E+3`, `123456789012345678901234567890`,
		`""`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\ud83d\ude00\ud800x"`, `"é😀"`,
		`[]`, `{}`, `[1,[2,[3,{}]]]`, `{"a":{"b":[null,true]},"a":2}`,
		" \t\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \r\n",
		`"a long string with more than eight bytes of plain text and then \u0041"`,
	}
	for _, s := range good {
		got, err := Decode([]byte(s))
		if err != nil {
			t.Errorf("Decode(%q): %v", s, err)
			continue
		}
		want, err := stdDecode([]byte(s))
		if err != nil {
			t.Fatalf("reference rejects %q: %v", s, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%q) = %#v, want %#v", s, got, want)
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
		{strings.Repeat("[", codec.MaxJSONDepth+1), "invalid JSON at byte 512: nested deeper than 512 levels"},
	}
	for _, tc := range bad {
		_, err := Decode([]byte(tc.in))
		if err == nil || err.Error() != tc.msg {
			t.Errorf("Decode(%q) error = %v, want %s", tc.in, err, tc.msg)
		}
		if !errors.Is(err, codec.ErrBadJSON) {
			t.Errorf("Decode(%q) error does not match codec.ErrBadJSON", tc.in)
		}
	}
}

func TestEncode(t *testing.T) {
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
		got, err := Encode(tc.in)
		if err != nil {
			t.Errorf("Encode(%#v): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("Encode(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
	// encoding/json agrees on floats and key order.
	for _, f := range []float64{0, 1, -1.5, 1e-7, 123456.789, 1e21, 1e300, 5e-324, 0.1 + 0.2} {
		want, _ := json.Marshal(f)
		if got := mustEncode(t, f); got != string(want) {
			t.Errorf("Encode(%v) = %s, encoding/json %s", f, got, want)
		}
	}
	for _, bad := range []any{json.Number("1."), json.Number(""), struct{}{}, []any{int64(1)}, map[string]any{"a": uint8(1)}} {
		if got, err := AppendEncode([]byte("x"), bad); err == nil || string(got) != "x" {
			t.Errorf("Encode(%#v) = %q, %v; want an error and dst unchanged", bad, got, err)
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
			t.Errorf("Encode(%s) = %s, encoding/json %s", s, b, want)
		}
	}
}

// FuzzDecode checks the decoder against the two references it promises
// to agree with: it accepts exactly what codec.AppendCompact accepts, and
// then returns what encoding/json with UseNumber returns. It also checks
// that mergeJSON is MergePatch of the decoded patch, and Encode∘Decode is
// idempotent.
func FuzzDecode(f *testing.F) {
	for _, tc := range rfc7396 {
		f.Add([]byte(tc.target), []byte(tc.patch))
	}
	f.Add([]byte(`{"amount":5688,"note":"utilities gift"}`), []byte(`{"amount":1,"x":{"y":null,"z":[{"a":null}]}}`))
	f.Add([]byte(`{"a":{"b":{"c":1,"e":2}}}`), []byte(`{"a":{"b":1,"b":{"c":null}},"a":{"d":2},"\u0061":{"f":3}}`))
	f.Add([]byte(`"\ud800\udc00\ud800"`), []byte(` { "a\u0000" : -0.0e+0 } `))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		got, err := Decode(patch)
		_, cerr := codec.AppendCompact(nil, patch)
		if (err == nil) != (cerr == nil) {
			t.Fatalf("Decode error %v, codec.AppendCompact error %v", err, cerr)
		}
		if err != nil {
			if _, merr := mergeJSON(nil, patch); merr == nil {
				t.Fatalf("mergeJSON accepts what Decode rejects (%v)", err)
			}
			return
		}
		want, err := stdDecode(patch)
		if err != nil {
			t.Fatalf("encoding/json rejects what Decode accepts: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode = %#v\nencoding/json %#v", got, want)
		}
		enc := mustEncode(t, got)
		if again := mustEncode(t, mustDecode(t, enc)); again != enc {
			t.Fatalf("Encode not stable: %s then %s", enc, again)
		}

		tv, err := Decode(target)
		if err != nil {
			tv = nil
		}
		want = MergePatch(deepCopy(tv), got)
		if mustEncode(t, got) != enc {
			t.Fatalf("MergePatch modified the patch")
		}
		merged, err := mergeJSON(deepCopy(tv), patch)
		if err != nil {
			t.Fatalf("mergeJSON: %v", err)
		}
		if a, b := mustEncode(t, merged), mustEncode(t, want); a != b {
			t.Fatalf("mergeJSON = %s, MergePatch = %s", a, b)
		}
	})
}
