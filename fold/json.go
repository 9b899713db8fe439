package fold

// A hand-written decoder of JSON into Go values, and the canonical encoder
// of states.
//
// Why not encoding/json: the default reducer decodes the data of every
// event it folds, and json.Decoder with UseNumber takes about 1.5 µs and
// 14 allocations for the 130 bytes of data of a benchmark event
// (reflection, a bytes.Reader, a scanner that calls a function per byte).
// The decoder below reads each byte once and allocates only the values it
// returns: 0.3 µs (BenchmarkDecode*). It can also merge an object straight
// into a state (mergeJSON) without building the patch first: 0.2 µs for a
// whole merge step (BenchmarkMergeStep).
//
// It accepts exactly what codec.AppendCompact accepts (RFC 8259, strings
// of valid UTF-8, at most codec.MaxJSONDepth levels of nesting), and for
// that input returns what encoding/json returns with UseNumber: nil, bool,
// string, json.Number, []any and map[string]any, the last duplicate key
// winning. FuzzDecode checks both.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/evtdev/evt/codec"
)

// Decode decodes one JSON value (surrounding whitespace allowed), numbers
// as json.Number, like codec.DecodeJSON. Errors are *codec.SyntaxError.
// It is the inverse of Encode for the states it writes (a state nested
// deeper than codec.MaxJSONDepth excepted, which Decode refuses).
func Decode(b []byte) (any, error) {
	d := decoder{src: b}
	d.skipSpace()
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// mergeJSON returns MergePatch(target, v) where v is the value that patch
// decodes to, without materialising v: object members are merged into
// target as they are read. Like MergePatch, it modifies target's objects
// in place; none of what it stores in target is shared with anything.
//
// Streaming is correct only if no object it streams (the root, and objects
// reached from it through objects) has a key twice: the last one wins, but
// the earlier ones would already have changed target. Such data (and data
// with escaped keys, which might be duplicates in disguise) takes the slow
// path, Decode then MergePatch; uniqueKeys tells them apart in a quick scan.
func mergeJSON(target any, patch []byte) (any, error) {
	if !uniqueKeys(patch) {
		p, err := Decode(patch)
		if err != nil {
			return nil, err
		}
		return MergePatch(target, p), nil
	}
	d := decoder{src: patch}
	d.skipSpace()
	v, err := d.merge(target)
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// uniqueKeys reports whether mergeJSON may stream patch: whether every
// object reached from the root through objects only has distinct keys
// without escapes. It checks no syntax: on anything it does not expect it
// answers false, and Decode reports the error.
func uniqueKeys(patch []byte) bool {
	i := 0
	for i < len(patch) && isSpace(patch[i]) {
		i++
	}
	if i >= len(patch) || patch[i] != '{' {
		return true // not an object: nothing is streamed
	}
	_, ok := uniqueObjectKeys(patch, i, 0)
	return ok
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// uniqueObjectKeys checks the object at src[i] == '{' and those nested in
// it through members, and returns the index after it.
func uniqueObjectKeys(src []byte, i, depth int) (int, bool) {
	if depth > codec.MaxJSONDepth {
		return 0, false
	}
	// Keys seen so far, as spans of src: compared pairwise while there
	// are few (the usual case, no allocation), in a set beyond.
	var small [16][2]int
	keys := small[:0]
	var set map[string]struct{}
	i++ // '{'
	for {
		i = skipSpaceAt(src, i)
		if i >= len(src) {
			return 0, false
		}
		if src[i] == '}' {
			return i + 1, true
		}
		if src[i] == ',' {
			i = skipSpaceAt(src, i+1)
		}
		if i >= len(src) || src[i] != '"' {
			return 0, false
		}
		end, escaped := stringEnd(src, i)
		if end < 0 || escaped {
			return 0, false
		}
		key := src[i+1 : end-1]
		switch {
		case set != nil:
			if _, dup := set[string(key)]; dup {
				return 0, false
			}
			set[string(key)] = struct{}{}
		default:
			for _, k := range keys {
				if string(src[k[0]:k[1]]) == string(key) {
					return 0, false
				}
			}
			if len(keys) < len(small) {
				keys = append(keys, [2]int{i + 1, end - 1})
				break
			}
			set = make(map[string]struct{}, 2*len(keys))
			for _, k := range keys {
				set[string(src[k[0]:k[1]])] = struct{}{}
			}
			set[string(key)] = struct{}{}
		}
		i = skipSpaceAt(src, end)
		if i >= len(src) || src[i] != ':' {
			return 0, false
		}
		i = skipSpaceAt(src, i+1)
		if i >= len(src) {
			return 0, false
		}
		var ok bool
		if src[i] == '{' {
			i, ok = uniqueObjectKeys(src, i, depth+1)
		} else {
			i, ok = skipValueAt(src, i)
		}
		if !ok {
			return 0, false
		}
	}
}

func skipSpaceAt(src []byte, i int) int {
	for i < len(src) && isSpace(src[i]) {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at src[i] == '"'
// (-1 if it does not end) and whether it has escapes.
func stringEnd(src []byte, i int) (int, bool) {
	escaped := false
	for i++; i < len(src); i++ {
		for i+8 <= len(src) && !codec.HasSpecialByte(binary.LittleEndian.Uint64(src[i:])) {
			i += 8
		}
		if i >= len(src) {
			break
		}
		switch src[i] {
		case '"':
			return i + 1, escaped
		case '\\':
			escaped = true
			i++
		}
	}
	return -1, escaped
}

// skipValueAt returns the index after the value at src[i], not checking
// its syntax beyond what finding its end needs. Objects in it are not
// streamed (they are inside an array, or the value is not an object), so
// their keys do not matter.
func skipValueAt(src []byte, i int) (int, bool) {
	depth := 0
	for i < len(src) {
		c := src[i]
		switch c {
		case '"':
			end, _ := stringEnd(src, i)
			if end < 0 {
				return 0, false
			}
			i = end
		case '[', '{':
			depth++
			i++
		case ']', '}':
			if depth == 0 {
				return i, true // the end of the enclosing object
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i, true
			}
			i++
		default:
			if depth == 0 && isSpace(c) {
				return i, true
			}
			i++
		}
		if depth == 0 && (c == '"' || c == ']' || c == '}') {
			return i, true
		}
	}
	return i, depth == 0
}

type decoder struct {
	src     []byte
	i       int    // next byte of src to read
	depth   int    // arrays and objects open around i
	scratch []byte // unescaped strings are built here
}

func (d *decoder) end() error {
	d.skipSpace()
	if d.i < len(d.src) {
		return d.unexpected(" after top-level value")
	}
	return nil
}

func (d *decoder) skipSpace() {
	for d.i < len(d.src) {
		switch d.src[d.i] {
		case ' ', '\n', '\r', '\t':
			d.i++
		default:
			return
		}
	}
}

// value decodes one value starting exactly at i.
func (d *decoder) value() (any, error) {
	if d.i >= len(d.src) {
		return nil, d.unexpected("")
	}
	switch c := d.src[d.i]; {
	case c == '"':
		return d.string()
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, d.unexpected("")
}

func (d *decoder) open() error {
	d.depth++
	if d.depth > codec.MaxJSONDepth {
		return &codec.SyntaxError{Offset: d.i, Msg: "nested deeper than " + strconv.Itoa(codec.MaxJSONDepth) + " levels"}
	}
	d.i++
	d.skipSpace()
	return nil
}

func (d *decoder) object() (any, error) {
	m := make(map[string]any)
	err := d.members(func(key []byte) error {
		k := string(key) // now: key is only valid until the next read
		v, err := d.value()
		if err != nil {
			return err
		}
		m[k] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// members reads an object starting at its '{'. For each member it reads
// the key and calls member with the key's decoded bytes (valid until the
// next read) and i at the value, which member must read.
func (d *decoder) members(member func(key []byte) error) error {
	if err := d.open(); err != nil {
		return err
	}
	if d.i < len(d.src) && d.src[d.i] == '}' {
		d.i++
		d.depth--
		return nil
	}
	for {
		if d.i >= len(d.src) || d.src[d.i] != '"' {
			return d.unexpected(", expected object key")
		}
		key, err := d.stringBytes()
		if err != nil {
			return err
		}
		d.skipSpace()
		if d.i >= len(d.src) || d.src[d.i] != ':' {
			return d.unexpected(", expected ':'")
		}
		d.i++
		d.skipSpace()
		if err := member(key); err != nil {
			return err
		}
		d.skipSpace()
		if d.i < len(d.src) {
			switch d.src[d.i] {
			case ',':
				d.i++
				d.skipSpace()
				continue
			case '}':
				d.i++
				d.depth--
				return nil
			}
		}
		return d.unexpected(", expected ',' or '}'")
	}
}

func (d *decoder) array() (any, error) {
	if err := d.open(); err != nil {
		return nil, err
	}
	a := []any{}
	if d.i < len(d.src) && d.src[d.i] == ']' {
		d.i++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.skipSpace()
		if d.i < len(d.src) {
			switch d.src[d.i] {
			case ',':
				d.i++
				d.skipSpace()
				continue
			case ']':
				d.i++
				d.depth--
				return a, nil
			}
		}
		return nil, d.unexpected(", expected ',' or ']'")
	}
}

// merge is mergeJSON for the value at i: objects are merged member by
// member into target, anything else replaces it.
func (d *decoder) merge(target any) (any, error) {
	if d.i >= len(d.src) || d.src[d.i] != '{' {
		return d.value()
	}
	obj, ok := target.(map[string]any)
	if !ok {
		obj = make(map[string]any)
	}
	err := d.members(func(key []byte) error {
		if d.i < len(d.src) {
			switch d.src[d.i] {
			case 'n':
				if err := d.literal("null"); err != nil {
					return err
				}
				delete(obj, string(key))
				return nil
			case '{':
				if old, ok := obj[string(key)].(map[string]any); ok {
					_, err := d.merge(old) // in place
					return err
				}
				k := string(key) // now: key is only valid until the next read
				v, err := d.merge(nil)
				if err != nil {
					return err
				}
				obj[k] = v
				return nil
			}
		}
		k := string(key)
		v, err := d.value()
		if err != nil {
			return err
		}
		obj[k] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return obj, nil
}

func (d *decoder) string() (any, error) {
	b, err := d.stringBytes()
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// stringBytes reads the string starting at its quote and returns its
// decoded content: a subslice of src when it has no escapes, else of
// scratch. Either way it is only valid until the next read.
func (d *decoder) stringBytes() ([]byte, error) {
	src := d.src
	start := d.i + 1
	i := start
	escaped := false
	for {
		for i+8 <= len(src) && !codec.HasSpecialByte(binary.LittleEndian.Uint64(src[i:])) {
			i += 8
		}
		for i < len(src) && codec.PlainStringByte(src[i]) {
			i++
		}
		if i >= len(src) {
			d.i = i
			return nil, d.unexpected(" in string")
		}
		switch c := src[i]; {
		case c == '"':
			d.i = i + 1
			if !escaped {
				return src[start:i], nil
			}
			d.scratch = codec.AppendUnescaped(d.scratch[:0], src[start:i])
			return d.scratch, nil
		case c == '\\':
			n, err := codec.EscapeLen(src, i)
			if err != nil {
				return nil, err
			}
			escaped = true
			i += n
		case c < 0x20:
			return nil, &codec.SyntaxError{Offset: i, Msg: fmt.Sprintf("control character 0x%02x in string", c)}
		default:
			r, n := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, &codec.SyntaxError{Offset: i, Msg: "invalid UTF-8 in string"}
			}
			i += n
		}
	}
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and keeps
// its text, as UseNumber does.
func (d *decoder) number() (any, error) {
	end, err := codec.NumberEnd(d.src, d.i)
	if err != nil {
		return nil, err
	}
	s := json.Number(d.src[d.i:end])
	d.i = end
	return s, nil
}

// isNumber reports whether s is exactly one JSON number.
func isNumber(s string) bool {
	end, err := codec.NumberEnd([]byte(s), 0)
	return err == nil && end == len(s)
}

func (d *decoder) literal(lit string) error {
	for j := 0; j < len(lit); j++ {
		if d.i >= len(d.src) || d.src[d.i] != lit[j] {
			return d.unexpected(" in literal " + lit)
		}
		d.i++
	}
	return nil
}

func (d *decoder) unexpected(suffix string) error { return codec.UnexpectedAt(d.src, d.i, suffix) }

// Encode returns the canonical compact JSON of a state: object keys sorted
// byte-wise (as encoding/json sorts map keys), no insignificant
// whitespace, strings escaped as evt prints them (codec.AppendJSONString:
// no HTML escaping), json.Number as its text. Numbers that are not JSON
// follow jq: NaN is null, ±Inf is ±1.7976931348623157e+308. Values of
// types other than those of a state (see the package comment) are an error.
func Encode(state any) ([]byte, error) {
	return AppendEncode(nil, state)
}

// AppendEncode appends Encode(state) to dst. On error the returned slice
// holds dst's original length.
func AppendEncode(dst []byte, state any) ([]byte, error) {
	out, err := appendValue(dst, state)
	if err != nil {
		return dst, err
	}
	return out, nil
}

func appendValue(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case string:
		return codec.AppendJSONString(dst, v), nil
	case json.Number:
		if !isNumber(string(v)) {
			return dst, fmt.Errorf("invalid number %q in state", v)
		}
		return append(dst, v...), nil
	case float64:
		return appendFloat(dst, v), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case *big.Int:
		return v.Append(dst, 10), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		var buf [16]string
		keys := buf[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = codec.AppendJSONString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendValue(dst, v[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, fmt.Errorf("cannot encode a %T in a state", v)
}

// appendFloat formats f as encoding/json does (shortest representation,
// exponent only below 1e-6 and from 1e21 on), with jq's answer for
// the values JSON cannot hold.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) {
		return append(dst, "null"...)
	}
	f = min(max(f, -math.MaxFloat64), math.MaxFloat64)
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-07 → e-7, as encoding/json writes it.
		b := dst[start:]
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}
