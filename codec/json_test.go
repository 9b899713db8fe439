package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// stdlibDiffers marks inputs that encoding/json accepts but AppendCompact
// rejects on purpose (see the top of json.go).
const (
	sameAsStdlib = ""
	badUTF8      = "encoding/json does not check UTF-8"
	tooDeep      = "encoding/json allows 10000 levels"
)

var compactTests = []struct {
	name string
	in   string
	want string // compact form; "" when invalid
	err  string // for invalid input: the whole error message
	diff string // why json.Valid disagrees, or sameAsStdlib
}{
	// Scalars.
	{name: "true", in: `true`, want: `true`},
	{name: "false", in: `false`, want: `false`},
	{name: "null", in: `null`, want: `null`},
	{name: "empty string", in: `""`, want: `""`},
	{name: "string", in: `"hello"`, want: `"hello"`},
	{name: "surrounding whitespace", in: " \t\r\n 1 \n\t", want: `1`},

	// Numbers, by the grammar.
	{name: "zero", in: `0`, want: `0`},
	{name: "minus zero", in: `-0`, want: `-0`},
	{name: "minus zero fraction", in: `-0.0`, want: `-0.0`},
	{name: "integer", in: `1234567890`, want: `1234567890`},
	{name: "negative", in: `-42`, want: `-42`},
	{name: "fraction", in: `3.14159`, want: `3.14159`},
	{name: "exponent", in: `1e5`, want: `1e5`},
	{name: "exponent upper plus", in: `1E+5`, want: `1E+5`},
	{name: "exponent minus", in: `2.5e-10`, want: `2.5e-10`},
	{name: "zero exponent", in: `0e0`, want: `0e0`},
	{name: "huge kept as text", in: `1e400`, want: `1e400`},
	{name: "long integer kept as text", in: `123456789012345678901234567890`, want: `123456789012345678901234567890`},
	{name: "leading zero", in: `01`, err: `invalid JSON at byte 1: leading zero in number`},
	{name: "negative leading zero", in: `-01`, err: `invalid JSON at byte 2: leading zero in number`},
	{name: "trailing dot", in: `1.`, err: `invalid JSON at byte 2: unexpected end of input after decimal point, expected digit`},
	{name: "dot then exponent", in: `1.e5`, err: `invalid JSON at byte 2: unexpected 'e' after decimal point, expected digit`},
	{name: "leading dot", in: `.5`, err: `invalid JSON at byte 0: unexpected '.'`},
	{name: "lone minus", in: `-`, err: `invalid JSON at byte 1: unexpected end of input in number`},
	{name: "minus letter", in: `-a`, err: `invalid JSON at byte 1: unexpected 'a' in number, expected digit`},
	{name: "plus sign", in: `+1`, err: `invalid JSON at byte 0: unexpected '+'`},
	{name: "empty exponent", in: `1e`, err: `invalid JSON at byte 2: unexpected end of input in exponent, expected digit`},
	{name: "signed empty exponent", in: `1e+`, err: `invalid JSON at byte 3: unexpected end of input in exponent, expected digit`},
	{name: "hex", in: `0x10`, err: `invalid JSON at byte 1: unexpected 'x' after top-level value`},
	{name: "NaN", in: `NaN`, err: `invalid JSON at byte 0: unexpected 'N'`},
	{name: "Infinity", in: `-Infinity`, err: `invalid JSON at byte 1: unexpected 'I' in number, expected digit`},

	// Literals.
	{name: "short literal", in: `tru`, err: `invalid JSON at byte 3: unexpected end of input in literal true`},
	{name: "wrong literal", in: `nul1`, err: `invalid JSON at byte 3: unexpected '1' in literal null`},
	{name: "capital literal", in: `True`, err: `invalid JSON at byte 0: unexpected 'T'`},
	{name: "literal then garbage", in: `falsey`, err: `invalid JSON at byte 5: unexpected 'y' after top-level value`},

	// Every escape.
	{name: "escape quote", in: `"\""`, want: `"\""`},
	{name: "escape backslash", in: `"\\"`, want: `"\\"`},
	{name: "escape slash", in: `"\/"`, want: `"\/"`},
	{name: "escape b f n r t", in: `"\b\f\n\r\t"`, want: `"\b\f\n\r\t"`},
	{name: "escape u", in: `"\u00e9\u00E9\uABCD"`, want: `"\u00e9\u00E9\uABCD"`},
	{name: "escape u nul", in: `"\u0000"`, want: `"\u0000"`},
	{name: "surrogate pair", in: `"\ud83d\ude00"`, want: `"\ud83d\ude00"`},
	{name: "lone surrogate is valid JSON", in: `"\ud800"`, want: `"\ud800"`},
	{name: "unknown escape", in: `"\a"`, err: `invalid JSON at byte 1: invalid escape \'a'`},
	{name: "escaped apostrophe", in: `"\'"`, err: `invalid JSON at byte 1: invalid escape \'''`},
	{name: "short u escape", in: `"\u12"`, err: `invalid JSON at byte 5: invalid \u escape: '"' is not a hex digit`},
	{name: "bad hex", in: `"\u12g4"`, err: `invalid JSON at byte 5: invalid \u escape: 'g' is not a hex digit`},
	{name: "u escape at end", in: `"\u12`, err: `invalid JSON at byte 5: unexpected end of input in \u escape`},
	{name: "backslash at end", in: `"\`, err: `invalid JSON at byte 2: unexpected end of input in string`},
	{name: "escape U", in: `"\U0041"`, err: `invalid JSON at byte 1: invalid escape \'U'`},

	// Strings: raw bytes.
	{name: "whitespace in string kept", in: `" a \t b "`, want: `" a \t b "`},
	{name: "utf8 in string", in: `"héllo wörld 😀 €"`, want: `"héllo wörld 😀 €"`},
	{name: "U+FFFD in string", in: "\"\uFFFD\"", want: "\"\uFFFD\""},
	{name: "DEL in string", in: "\"\x7f\"", want: "\"\x7f\""},
	{name: "U+2028 not escaped", in: "\"\u2028\"", want: "\"\u2028\""},
	{name: "raw newline", in: "\"a\nb\"", err: `invalid JSON at byte 2: control character 0x0a in string`},
	{name: "raw tab", in: "\"a\tb\"", err: `invalid JSON at byte 2: control character 0x09 in string`},
	{name: "raw NUL", in: "\"\x00\"", err: `invalid JSON at byte 1: control character 0x00 in string`},
	{name: "unterminated", in: `"abc`, err: `invalid JSON at byte 4: unexpected end of input in string`},
	{name: "single quotes", in: `'a'`, err: `invalid JSON at byte 0: unexpected '''`},
	{name: "invalid byte", in: "\"\xff\"", err: `invalid JSON at byte 1: invalid UTF-8 in string`, diff: badUTF8},
	{name: "truncated sequence", in: "\"\xc3\"", err: `invalid JSON at byte 1: invalid UTF-8 in string`, diff: badUTF8},
	{name: "overlong encoding", in: "\"\xc0\xaf\"", err: `invalid JSON at byte 1: invalid UTF-8 in string`, diff: badUTF8},
	{name: "encoded surrogate", in: "\"\xed\xa0\x80\"", err: `invalid JSON at byte 1: invalid UTF-8 in string`, diff: badUTF8},
	{name: "beyond U+10FFFF", in: "\"\xf4\x90\x80\x80\"", err: `invalid JSON at byte 1: invalid UTF-8 in string`, diff: badUTF8},
	{name: "invalid byte in key", in: "{\"\xfe\":1}", err: `invalid JSON at byte 2: invalid UTF-8 in string`, diff: badUTF8},
	{name: "invalid byte outside string", in: "\xff", err: `invalid JSON at byte 0: unexpected byte 0xff`},
	{name: "BOM", in: "\ufeff{}", err: `invalid JSON at byte 0: unexpected byte 0xef`},

	// Containers.
	{name: "empty object", in: `{}`, want: `{}`},
	{name: "empty object spaced", in: `{ }`, want: `{}`},
	{name: "empty array", in: `[ ]`, want: `[]`},
	{name: "object", in: `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, want: `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`},
	{name: "pretty object", in: "{\n  \"a\" : 1 ,\n  \"b\" : [ 1 , 2 ]\r\n}\n", want: `{"a":1,"b":[1,2]}`},
	{name: "duplicate keys are JSON", in: `{"a":1,"a":2}`, want: `{"a":1,"a":2}`},
	{name: "trailing comma object", in: `{"a":1,}`, err: `invalid JSON at byte 7: unexpected '}', expected object key`},
	{name: "trailing comma array", in: `[1,]`, err: `invalid JSON at byte 3: unexpected ']'`},
	{name: "missing colon", in: `{"a" 1}`, err: `invalid JSON at byte 5: unexpected '1', expected ':'`},
	{name: "missing comma", in: `{"a":1 "b":2}`, err: `invalid JSON at byte 7: unexpected '"', expected ',' or '}'`},
	{name: "missing array comma", in: `[1 2]`, err: `invalid JSON at byte 3: unexpected '2', expected ',' or ']'`},
	{name: "unquoted key", in: `{a:1}`, err: `invalid JSON at byte 1: unexpected 'a', expected object key`},
	{name: "number key", in: `{1:1}`, err: `invalid JSON at byte 1: unexpected '1', expected object key`},
	{name: "unclosed object", in: `{"a":1`, err: `invalid JSON at byte 6: unexpected end of input, expected ',' or '}'`},
	{name: "unclosed array", in: `[`, err: `invalid JSON at byte 1: unexpected end of input`},
	{name: "mismatched close", in: `[}`, err: `invalid JSON at byte 1: unexpected '}'`},
	{name: "stray close", in: `}`, err: `invalid JSON at byte 0: unexpected '}'`},
	{name: "max depth", in: strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth), want: strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth)},
	{name: "too deep", in: strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1), err: `invalid JSON at byte 512: nested deeper than 512 levels`, diff: tooDeep},
	{name: "too deep objects", in: strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1), err: `invalid JSON at byte 2560: nested deeper than 512 levels`, diff: tooDeep},
	{name: "hostile depth", in: strings.Repeat("[", 1<<20), err: `invalid JSON at byte 512: nested deeper than 512 levels`},

	// Around the value.
	{name: "empty input", in: ``, err: `invalid JSON at byte 0: unexpected end of input`},
	{name: "whitespace only", in: " \t\r\n", err: `invalid JSON at byte 4: unexpected end of input`},
	{name: "trailing garbage", in: `{} x`, err: `invalid JSON at byte 3: unexpected 'x' after top-level value`},
	{name: "two values", in: `1 2`, err: `invalid JSON at byte 2: unexpected '2' after top-level value`},
	{name: "two objects", in: `{}{}`, err: `invalid JSON at byte 2: unexpected '{' after top-level value`},
	{name: "NUL after value", in: "{}\x00", err: `invalid JSON at byte 2: unexpected byte 0x00 after top-level value`},
	{name: "form feed is not whitespace", in: "\f1", err: `invalid JSON at byte 0: unexpected byte 0x0c`},
	{name: "non-ASCII outside string", in: `[é]`, err: `invalid JSON at byte 1: unexpected 'é'`},
	{name: "comment", in: `{} // no`, err: `invalid JSON at byte 3: unexpected '/' after top-level value`},
}

func TestAppendCompact(t *testing.T) {
	for _, tt := range compactTests {
		t.Run(tt.name, func(t *testing.T) {
			src := []byte(tt.in)
			valid := tt.err == ""
			if stdValid := json.Valid(src); stdValid != (valid != (tt.diff != sameAsStdlib)) {
				t.Errorf("json.Valid = %v; table says valid=%v diff=%q", stdValid, valid, tt.diff)
			}

			prefix := []byte("prefix:")
			got, err := AppendCompact(prefix, src)
			if !valid {
				if err == nil {
					t.Fatalf("AppendCompact(%q) = %q, want error %q", tt.in, got, tt.err)
				}
				if err.Error() != tt.err {
					t.Errorf("error = %q\n         want %q", err, tt.err)
				}
				if !errors.Is(err, ErrBadJSON) {
					t.Errorf("errors.Is(%v, ErrBadJSON) = false", err)
				}
				var se *SyntaxError
				if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(src) {
					t.Errorf("error %#v is not a *SyntaxError with an offset in [0,%d]", err, len(src))
				}
				if string(got) != "prefix:" {
					t.Errorf("on error dst = %q, want it unchanged", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("AppendCompact(%q): %v", tt.in, err)
			}
			if want := "prefix:" + tt.want; string(got) != want {
				t.Errorf("AppendCompact = %q, want %q", got, want)
			}
			var std bytes.Buffer
			if err := json.Compact(&std, src); err != nil {
				t.Fatalf("json.Compact: %v", err)
			}
			if !bytes.Equal(got[len(prefix):], std.Bytes()) {
				t.Errorf("AppendCompact = %q, json.Compact = %q", got[len(prefix):], std.Bytes())
			}
		})
	}
}

// TestAppendCompactNoAlloc: compacting into a buffer with room must not
// allocate, or the bulk append pays for it on every line.
func TestAppendCompactNoAlloc(t *testing.T) {
	src := []byte("{ \"a\" : [1, 2, {\"b\": \"c d\"}], \"e\": null }")
	dst := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := AppendCompact(dst[:0], src); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendCompact allocates %v times per call", allocs)
	}
}

var envelopeTests = []struct {
	name string
	in   string
	want Envelope // when err == ""
	err  string   // the whole message
}{
	{
		name: "full",
		in:   `{"stream":"account-7","type":"Deposited","data":{"amount":50},"metadata":{"correlation_id":"c-1"},"id":"e-1"}`,
		want: Envelope{Stream: "account-7", Type: "Deposited", ID: "e-1", Data: []byte(`{"amount":50}`), Metadata: []byte(`{"correlation_id":"c-1"}`), HasData: true},
	},
	{
		name: "minimal: data absent is null",
		in:   `{"stream":"s","type":"t"}`,
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`null`)},
	},
	{
		name: "explicit null data is present",
		in:   `{"type":"t","data":null,"stream":"s"}`,
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`null`), HasData: true},
	},
	{
		name: "pretty data is compacted",
		in:   "  {\"stream\" : \"s\" ,\n \"type\":\"t\", \"data\" : { \"a\" : [ 1 , \"x y\" ] } }\r\n",
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`{"a":[1,"x y"]}`), HasData: true},
	},
	{
		name: "scalar data",
		in:   `{"stream":"s","type":"t","data":-0.5e3}`,
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`-0.5e3`), HasData: true},
	},
	{
		name: "null metadata is absent",
		in:   `{"stream":"s","type":"t","metadata":null,"data":1}`,
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`1`), HasData: true},
	},
	{
		name: "empty metadata is absent",
		in:   `{"stream":"s","type":"t","metadata":{ },"data":1}`,
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`1`), HasData: true},
	},
	{
		name: "non-object metadata is kept",
		in:   `{"stream":"s","type":"t","metadata":[]}`,
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`null`), Metadata: []byte(`[]`)},
	},
	{
		name: "printed envelope pipes back",
		in:   `{"position":42,"stream":"account-7","version":3,"type":"Deposited","time":"2026-11-25T22:00:00.123456789Z","id":"01JDX","data":{"amount":50}}`,
		want: Envelope{Stream: "account-7", Type: "Deposited", ID: "01JDX", Data: []byte(`{"amount":50}`), HasData: true,
			Time: []byte(`"2026-11-25T22:00:00.123456789Z"`)},
	},
	{
		name: "ignored fields may have any type",
		in:   `{"position":"x","version":[{}],"time":null,"stream":"s","type":"t"}`,
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`null`), Time: []byte(`null`)},
	},
	{
		name: "escapes in strings",
		in:   `{"stream":"a\"b\\c\/d\b\f\n\r\t","type":"\u00e9\u00C9","id":"\ud83d\ude00"}`,
		want: Envelope{Stream: "a\"b\\c/d\b\f\n\r\t", Type: "éÉ", ID: "😀", Data: []byte(`null`)},
	},
	{
		name: "lone surrogates become U+FFFD",
		in:   `{"stream":"\ud800x","type":"\udc00\ud800","id":"\ud83d\u0041"}`,
		want: Envelope{Stream: "\uFFFDx", Type: "\uFFFD\uFFFD", ID: "\uFFFDA", Data: []byte(`null`)},
	},
	{
		name: "escaped keys",
		in:   `{"str\u0065am":"s","\u0074ype":"t","d\u0061ta":{"k\u0065y":1}}`,
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`{"k\u0065y":1}`), HasData: true},
	},
	{
		name: "escapes in data are kept",
		in:   `{"stream":"s","type":"t","data":"\u00e9\n"}`,
		want: Envelope{Stream: "s", Type: "t", Data: []byte(`"\u00e9\n"`), HasData: true},
	},
	{
		name: "empty names are not checked here",
		in:   `{"stream":"","type":"","id":""}`,
		want: Envelope{Data: []byte(`null`)},
	},

	{name: "unknown field", in: `{"stream":"s","type":"t","foo":1}`, err: `unknown field "foo"`},
	{name: "keys are case-sensitive", in: `{"Stream":"s","type":"t"}`, err: `unknown field "Stream"`},
	{name: "unknown escaped field", in: `{"stream":"s","type":"t","f\u006fo":1}`, err: `unknown field "foo"`},
	{name: "duplicate field", in: `{"stream":"s","type":"t","stream":"u"}`, err: `duplicate field "stream"`},
	{name: "duplicate data", in: `{"stream":"s","type":"t","data":1,"data":2}`, err: `duplicate field "data"`},
	{name: "duplicate ignored field", in: `{"stream":"s","type":"t","time":1,"time":2}`, err: `duplicate field "time"`},
	{name: "duplicate via escape", in: `{"stream":"s","type":"t","\u0073tream":"u"}`, err: `duplicate field "stream"`},
	{name: "stream not a string", in: `{"stream":5,"type":"t"}`, err: `field "stream" must be a string`},
	{name: "type null", in: `{"stream":"s","type":null}`, err: `field "type" must be a string`},
	{name: "id object", in: `{"stream":"s","type":"t","id":{"a":1}}`, err: `field "id" must be a string`},
	{name: "missing stream", in: `{"type":"t","data":{}}`, err: `missing field "stream"`},
	{name: "missing type", in: `{"stream":"s"}`, err: `missing field "type"`},
	{name: "empty object", in: ` { } `, err: `missing field "stream"`},
	{name: "first envelope error wins", in: `{"foo":1,"stream":5}`, err: `unknown field "foo"`},
	{name: "array", in: `[{"stream":"s","type":"t"}]`, err: `event must be a JSON object, not an array`},
	{name: "string", in: ` "x" `, err: `event must be a JSON object, not a string`},
	{name: "number", in: `-1`, err: `event must be a JSON object, not a number`},
	{name: "null", in: `null`, err: `event must be a JSON object, not null`},
	{name: "bool", in: `false`, err: `event must be a JSON object, not a boolean`},

	// Syntax errors, with the offsets AppendCompact reports for the line.
	{name: "empty line", in: ``, err: `invalid JSON at byte 0: unexpected end of input`},
	{name: "whitespace line", in: "  \t", err: `invalid JSON at byte 3: unexpected end of input`},
	{name: "not JSON", in: `stream=s`, err: `invalid JSON at byte 0: unexpected 's'`},
	{name: "array then garbage", in: `[] x`, err: `invalid JSON at byte 3: unexpected 'x' after top-level value`},
	{name: "trailing garbage", in: `{"stream":"s","type":"t"} x`, err: `invalid JSON at byte 26: unexpected 'x' after top-level value`},
	{name: "trailing comma", in: `{"stream":"s","type":"t",}`, err: `invalid JSON at byte 25: unexpected '}', expected object key`},
	{name: "bad data", in: `{"stream":"s","type":"t","data":{"a":01}}`, err: `invalid JSON at byte 38: leading zero in number`},
	{name: "bad ignored value", in: `{"stream":"s","type":"t","time":x}`, err: `invalid JSON at byte 32: unexpected 'x'`},
	{name: "syntax beats unknown field", in: `{"foo":1,"stream":"s","type":"t"`, err: `invalid JSON at byte 32: unexpected end of input, expected ',' or '}'`},
	{name: "syntax beats type error", in: `{"stream":[1,],"type":"t"}`, err: `invalid JSON at byte 13: unexpected ']'`},
	{name: "invalid UTF-8 in stream", in: "{\"stream\":\"\xff\",\"type\":\"t\"}", err: `invalid JSON at byte 11: invalid UTF-8 in string`},
	{name: "raw newline in type", in: "{\"stream\":\"s\",\"type\":\"a\nb\"}", err: `invalid JSON at byte 23: control character 0x0a in string`},
	{name: "bad escape in key", in: `{"st\qream":"s"}`, err: `invalid JSON at byte 4: invalid escape \'q'`},
	{name: "missing colon", in: `{"stream" "s"}`, err: `invalid JSON at byte 10: unexpected '"', expected ':'`},
	{name: "too deep data", in: `{"stream":"s","type":"t","data":` + strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth) + `}`, err: `invalid JSON at byte 543: nested deeper than 512 levels`},
}

func TestParseEnvelope(t *testing.T) {
	for _, tt := range envelopeTests {
		t.Run(tt.name, func(t *testing.T) {
			line := []byte(tt.in)
			env := Envelope{Stream: "junk", Data: []byte("junk")}
			buf := []byte("prefix:")
			got, err := ParseEnvelope(line, &env, buf)

			// Syntax errors must be exactly AppendCompact's on the line.
			_, syntaxErr := AppendCompact(nil, line)
			var se *SyntaxError
			if errors.As(err, &se) != (syntaxErr != nil) {
				t.Errorf("ParseEnvelope error %v, but AppendCompact says %v", err, syntaxErr)
			} else if syntaxErr != nil && err.Error() != syntaxErr.Error() {
				t.Errorf("ParseEnvelope error %q, AppendCompact %q", err, syntaxErr)
			}

			if tt.err != "" {
				if err == nil {
					t.Fatalf("ParseEnvelope(%q) = %+v, want error %q", tt.in, env, tt.err)
				}
				if err.Error() != tt.err {
					t.Errorf("error = %q\n         want %q", err, tt.err)
				}
				if se == nil && !errors.Is(err, ErrBadEnvelope) {
					t.Errorf("errors.Is(%v, ErrBadEnvelope) = false", err)
				}
				if string(got) != "prefix:" {
					t.Errorf("on error buf = %q, want it unchanged", got)
				}
				if env.Stream != "" || env.Data != nil || env.HasData {
					t.Errorf("on error env = %+v, want zero", env)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnvelope(%q): %v", tt.in, err)
			}
			checkEnvelope(t, env, tt.want)
			if !bytes.HasPrefix(got, []byte("prefix:")) {
				t.Errorf("buf = %q, want the prefix kept", got)
			}
			// Data and Metadata live in the returned buf, clipped so an
			// append to one cannot overwrite the other.
			for _, v := range [][]byte{env.Data, env.Metadata} {
				if v != nil && (!inBuffer(v, got) || cap(v) != len(v)) {
					t.Errorf("%q is not a capacity-clipped subslice of buf", v)
				}
			}
		})
	}
}

func checkEnvelope(t *testing.T, got, want Envelope) {
	t.Helper()
	if got.Stream != want.Stream || got.Type != want.Type || got.ID != want.ID || got.HasData != want.HasData {
		t.Errorf("got stream=%q type=%q id=%q hasData=%v, want stream=%q type=%q id=%q hasData=%v",
			got.Stream, got.Type, got.ID, got.HasData, want.Stream, want.Type, want.ID, want.HasData)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("Data = %q, want %q", got.Data, want.Data)
	}
	if !bytes.Equal(got.Metadata, want.Metadata) || (got.Metadata == nil) != (want.Metadata == nil) {
		t.Errorf("Metadata = %q (nil %v), want %q (nil %v)", got.Metadata, got.Metadata == nil, want.Metadata, want.Metadata == nil)
	}
}

// inBuffer reports whether v's bytes are inside buf's backing array.
func inBuffer(v, buf []byte) bool {
	if len(v) == 0 {
		return true
	}
	full := buf[:cap(buf)]
	for i := range full {
		if &full[i] == &v[0] {
			return i+len(v) <= len(buf)
		}
	}
	return false
}

// TestParseEnvelopeSharedBuffer: a batch passes the returned buffer to
// the next call, and every earlier envelope must survive the growth.
func TestParseEnvelopeSharedBuffer(t *testing.T) {
	var buf []byte
	var envs []Envelope
	for i := range 1000 {
		line := `{"stream":"s","type":"t","data":{"i":` + strings.Repeat("1", i%20+1) + `},"metadata":{"m":` + strings.Repeat("2", i%7+1) + `}}`
		var env Envelope
		var err error
		buf, err = ParseEnvelope([]byte(line), &env, buf)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	for i, env := range envs {
		wantData := `{"i":` + strings.Repeat("1", i%20+1) + `}`
		wantMeta := `{"m":` + strings.Repeat("2", i%7+1) + `}`
		if string(env.Data) != wantData || string(env.Metadata) != wantMeta {
			t.Fatalf("envelope %d: data %q metadata %q, want %q %q", i, env.Data, env.Metadata, wantData, wantMeta)
		}
	}
}

// TestParseEnvelopeAllocs: only the strings are allocated, and with a
// buffer that has room, nothing else.
func TestParseEnvelopeAllocs(t *testing.T) {
	for _, tt := range []struct {
		line   string
		allocs float64
	}{
		{benchLine, 2},
		{`{"stream":"s-1","type":"T","id":"x","data":[1,2,3]}`, 3},
		{`{"str\u0065am":"\u0073-1","type":"T\n"}`, 2},
	} {
		var env Envelope
		line := []byte(tt.line)
		buf := make([]byte, 0, 1024)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := ParseEnvelope(line, &env, buf[:0]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > tt.allocs {
			t.Errorf("ParseEnvelope(%s) allocates %v times, want at most %v", tt.line, allocs, tt.allocs)
		}
	}
}

// nestingDepth is the deepest nesting of arrays and objects in src, which
// must be valid JSON.
func nestingDepth(src []byte) int {
	depth, deepest := 0, 0
	inString := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func FuzzAppendCompact(f *testing.F) {
	for _, tt := range compactTests {
		f.Add([]byte(tt.in))
	}
	for _, tt := range envelopeTests {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte(benchLine))
	f.Fuzz(func(t *testing.T, src []byte) {
		got, err := AppendCompact([]byte("prefix:"), src)

		// Valid for us: valid for encoding/json, valid UTF-8 (outside
		// strings non-ASCII is invalid anyway), not too deep.
		want := json.Valid(src) && utf8.Valid(src) && nestingDepth(src) <= MaxJSONDepth
		if (err == nil) != want {
			t.Fatalf("AppendCompact(%q) error %v; json.Valid %v, utf8.Valid %v", src, err, json.Valid(src), utf8.Valid(src))
		}
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrBadJSON) || se.Offset < 0 || se.Offset > len(src) {
				t.Fatalf("bad error %#v for %q", err, src)
			}
			if string(got) != "prefix:" {
				t.Fatalf("dst changed on error: %q", got)
			}
			return
		}
		got = got[len("prefix:"):]
		var std bytes.Buffer
		if err := json.Compact(&std, src); err != nil {
			t.Fatalf("json.Compact(%q): %v", src, err)
		}
		if !bytes.Equal(got, std.Bytes()) {
			t.Fatalf("AppendCompact(%q) = %q, json.Compact = %q", src, got, std.Bytes())
		}
		again, err := AppendCompact(nil, got)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("compact form %q does not compact to itself: %q, %v", got, again, err)
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	for _, tt := range envelopeTests {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte(benchLine))
	f.Fuzz(func(t *testing.T, line []byte) {
		var env Envelope
		buf, err := ParseEnvelope(line, &env, []byte("prefix:"))
		_, syntaxErr := AppendCompact(nil, line)
		if err != nil {
			var se *SyntaxError
			var ee *EnvelopeError
			switch {
			case errors.As(err, &se):
				if syntaxErr == nil || err.Error() != syntaxErr.Error() {
					t.Fatalf("ParseEnvelope(%q): %v, but AppendCompact: %v", line, err, syntaxErr)
				}
			case errors.As(err, &ee):
				if syntaxErr != nil {
					t.Fatalf("ParseEnvelope(%q): envelope error %v for invalid JSON (%v)", line, err, syntaxErr)
				}
			default:
				t.Fatalf("ParseEnvelope(%q): unexpected error type %#v", line, err)
			}
			if string(buf) != "prefix:" {
				t.Fatalf("buf changed on error: %q", buf)
			}
			return
		}
		if syntaxErr != nil {
			t.Fatalf("ParseEnvelope accepted %q, AppendCompact: %v", line, syntaxErr)
		}
		if !json.Valid(env.Data) || (env.Metadata != nil && !json.Valid(env.Metadata)) {
			t.Fatalf("ParseEnvelope(%q): data %q metadata %q", line, env.Data, env.Metadata)
		}
		if !inBuffer(env.Data, buf) || !inBuffer(env.Metadata, buf) {
			t.Fatalf("ParseEnvelope(%q): data or metadata not in buf", line)
		}

		// What we accept, encoding/json decodes to the same values.
		var std struct {
			Stream, Type, ID string
			Data, Metadata   json.RawMessage
		}
		if err := json.Unmarshal(line, &std); err != nil {
			t.Fatalf("json.Unmarshal(%q): %v", line, err)
		}
		if std.Stream != env.Stream || std.Type != env.Type || std.ID != env.ID {
			t.Fatalf("ParseEnvelope(%q) = %q %q %q, encoding/json %q %q %q", line, env.Stream, env.Type, env.ID, std.Stream, std.Type, std.ID)
		}
		wantData := compactRaw(t, std.Data, "null")
		if string(env.Data) != wantData || env.HasData != (std.Data != nil) {
			t.Fatalf("ParseEnvelope(%q) data %q (has %v), want %q", line, env.Data, env.HasData, wantData)
		}
		wantMeta := compactRaw(t, std.Metadata, "")
		if wantMeta == "null" || wantMeta == "{}" {
			wantMeta = ""
		}
		if string(env.Metadata) != wantMeta || (env.Metadata == nil) != (wantMeta == "") {
			t.Fatalf("ParseEnvelope(%q) metadata %q, want %q", line, env.Metadata, wantMeta)
		}
	})
}

// compactRaw is json.Compact of raw, or absent when raw is nil.
func compactRaw(t *testing.T, raw json.RawMessage, absent string) string {
	if raw == nil {
		return absent
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// benchLine is a realistic bulk-append line: about 200 bytes.
const benchLine = `{"stream":"account-123","type":"Deposited","data":{"amount":50,"currency":"EUR","note":"salary for november","balance_after":1250.75},"metadata":{"correlation_id":"c-1","causation_id":"cmd-42"}}`

func BenchmarkAppendCompact(b *testing.B) {
	for _, in := range []struct{ name, line string }{
		{"compact", benchLine},
		{"pretty", prettyBenchLine()},
	} {
		src := []byte(in.line)
		dst := make([]byte, 0, 1024)
		b.Run(in.name+"/codec", func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = AppendCompact(dst[:0], src); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/json.Valid+Compact", func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				if !json.Valid(src) {
					b.Fatal("invalid")
				}
				if err := json.Compact(&out, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func prettyBenchLine() string {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(benchLine), "", "  "); err != nil {
		panic(err)
	}
	return b.String()
}

func BenchmarkParseEnvelope(b *testing.B) {
	src := []byte(benchLine)
	b.Run("codec", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		var env Envelope
		for b.Loop() {
			var err error
			if buf, err = ParseEnvelope(src, &env, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	// encoding/json does less here: it neither compacts data nor rejects
	// unknown or duplicate fields, and still costs several times more.
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			var env struct {
				Stream   string          `json:"stream"`
				Type     string          `json:"type"`
				ID       string          `json:"id"`
				Data     json.RawMessage `json:"data"`
				Metadata json.RawMessage `json:"metadata"`
			}
			if err := json.Unmarshal(src, &env); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestHasSpecialByte checks the SWAR test against the byte table: every
// byte value at every position among plain bytes, and random words.
func TestHasSpecialByte(t *testing.T) {
	word := func(b [8]byte) uint64 { return binary.LittleEndian.Uint64(b[:]) }
	for c := range 256 {
		for pos := range 8 {
			for _, filler := range []byte{' ', 'a', '~', '!', '#', '[', ']'} {
				var b [8]byte
				for i := range b {
					b[i] = filler
				}
				b[pos] = byte(c)
				if got := hasSpecialByte(word(b)); got != !plainStringByte[c] {
					t.Fatalf("hasSpecialByte(%q) = %v", b, got)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		var b [8]byte
		want := false
		for i := range b {
			// Mostly plain bytes, so the special one is rare and alone.
			b[i] = byte(0x20 + rng.IntN(0x60))
			if rng.IntN(16) == 0 {
				b[i] = byte(rng.IntN(256))
			}
			want = want || !plainStringByte[b[i]]
		}
		if got := hasSpecialByte(word(b)); got != want {
			t.Fatalf("hasSpecialByte(%q) = %v", b, got)
		}
	}
}
