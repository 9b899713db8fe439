// Package schema checks the data of events against JSON Schemas of a
// common subset, quickly: straight on the compact JSON text of the data,
// without decoding it, and without anything to set up at start-up, so
// that the evt binary links it (package full checks the rest, with
// github.com/santhosh-tekuri/jsonschema/v6, in the evt-schema binary).
//
// The subset (draft 2020-12): boolean schemas, type, enum and const of
// scalars (strings, numbers, booleans, null), minimum, maximum,
// exclusiveMinimum, exclusiveMaximum, minLength, maxLength, minItems,
// maxItems, properties, required, additionalProperties and items (one
// schema for every element), with the annotations title, description,
// $comment, default, examples, deprecated, readOnly, writeOnly, $id and
// $defs ignored. Compile refuses anything else with ErrNotQuick.
// FuzzAgrees checks that Check and jsonschema/v6 agree on every schema of
// the subset and every data.
//
// One difference by design: data that repeats a key has every value of it
// checked (jsonschema checks the last, as a decoder keeps it).
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MismatchError says why the data of an event does not match its type's
// schema: the JSON pointer (RFC 6901) of the value that fails, "" for
// the whole data, and the schema's reason.
type MismatchError struct {
	Type    string
	Pointer string
	Reason  string
}

func (e *MismatchError) Error() string {
	if e.Pointer == "" {
		return fmt.Sprintf("%s data does not match its schema: %s", e.Type, e.Reason)
	}
	return fmt.Sprintf("%s data does not match its schema: %s: %s", e.Type, e.Pointer, e.Reason)
}

// ErrNotQuick is the error of Compile for a schema outside the subset.
var ErrNotQuick = errors.New("outside the quick subset")

// draft2020 is the one $schema the subset takes (or none).
const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// Schema is a compiled schema of the subset. Check may be called from
// several goroutines at once.
type Schema struct {
	root *node // nil: the schema true, anything matches
}

// types of JSON values, as a set.
const (
	tNull = 1 << iota
	tBoolean
	tInteger
	tNumber // every number, integers too
	tString
	tArray
	tObject
)

var typeNames = []struct {
	name string
	bit  uint8
}{{"null", tNull}, {"boolean", tBoolean}, {"integer", tInteger}, {"number", tNumber}, {"string", tString}, {"array", tArray}, {"object", tObject}}

// node is one compiled (sub)schema. A nil *node is the schema true.
type node struct {
	never bool  // the schema false
	types uint8 // 0: any type

	// choices are const and enum: the value must be one of each's
	// values (enum and const hold scalars only).
	choices []choice

	bounds []bound

	minLength, maxLength int // -1: no limit
	minItems, maxItems   int // -1: no limit

	keys     []key  // properties, and required names
	required []int  // indexes into keys, in the order of "required"
	reqMask  uint64 // the bits of the required keys
	addl     *node  // the schema of keys not in properties (nil: true)
	items    *node  // the schema of every element (nil: true)
	isObject bool   // has properties, required or additionalProperties
}

// key is a property name the schema knows.
type key struct {
	name string
	n    *node // nil: any value (a required name without a property schema, or true)
	bit  int   // its bit in reqMask, -1 when not required
	prop bool  // named by properties (not only by required)
}

// choice is a const (one value) or an enum.
type choice struct {
	values []scalar
	reason string // when the value is none of them
}

// scalar is a value of enum or const.
type scalar struct {
	kind byte // 's' string, 'n' number, 't' true, 'f' false, '0' null
	s    string
	num  *big.Rat
}

// bound is one of minimum, maximum, exclusiveMinimum, exclusiveMaximum.
type bound struct {
	keyword   string
	upper     bool // maximum, exclusiveMaximum
	exclusive bool
	f         float64
	r         *big.Rat
	text      string // the literal, for the reason
}

// Compile compiles a schema of the subset (JSON text that jsonschema
// accepts: evt schema set checked it). A schema outside the subset is an
// error wrapping ErrNotQuick.
func Compile(text []byte) (*Schema, error) {
	dec := json.NewDecoder(strings.NewReader(string(text)))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("the schema is not JSON: %w", err)
	}
	if m, ok := doc.(map[string]any); ok {
		if v, ok := m["$schema"]; ok && v != draft2020 {
			return nil, fmt.Errorf("$schema %v: %w", v, ErrNotQuick)
		}
	}
	n, err := compileNode(doc, true)
	if err != nil {
		return nil, err
	}
	return &Schema{root: n}, nil
}

func compileNode(doc any, root bool) (*node, error) {
	switch d := doc.(type) {
	case bool:
		if d {
			return nil, nil
		}
		return &node{never: true}, nil
	case map[string]any:
		return compileObject(d, root)
	}
	return nil, fmt.Errorf("a schema is an object or a boolean, not %v", doc)
}

func compileObject(m map[string]any, root bool) (*node, error) {
	n := &node{minLength: -1, maxLength: -1, minItems: -1, maxItems: -1}
	names := make([]string, 0, len(m))
	for kw := range m {
		names = append(names, kw)
	}
	sort.Strings(names) // properties before required: keys get their schemas first
	for _, kw := range names {
		v := m[kw]
		var err error
		switch kw {
		case "title", "description", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly", "$id", "$defs":
		case "$schema":
			if !root {
				return nil, fmt.Errorf("$schema in a subschema: %w", ErrNotQuick)
			}
		case "type":
			err = n.compileType(v)
		case "enum":
			arr, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("enum is not an array")
			}
			var ch choice
			for _, item := range arr {
				s, err := toScalar(item)
				if err != nil {
					return nil, fmt.Errorf("enum: %w", err)
				}
				ch.values = append(ch.values, s)
			}
			ch.reason = "value must be one of " + displayList(ch.values)
			if len(ch.values) == 1 {
				ch.reason = "value must be " + display(ch.values[0])
			}
			n.choices = append(n.choices, ch)
		case "const":
			s, err := toScalar(v)
			if err != nil {
				return nil, fmt.Errorf("const: %w", err)
			}
			n.choices = append(n.choices, choice{values: []scalar{s}, reason: "value must be " + display(s)})
		case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
			num, ok := v.(json.Number)
			if !ok {
				return nil, fmt.Errorf("%s is not a number", kw)
			}
			r, ok := new(big.Rat).SetString(string(num))
			if !ok {
				return nil, fmt.Errorf("%s: bad number %s", kw, num)
			}
			f, _ := r.Float64()
			n.bounds = append(n.bounds, bound{keyword: kw, upper: strings.Contains(kw, "ax"),
				exclusive: strings.HasPrefix(kw, "exclusive"), f: f, r: r, text: string(num)})
		case "minLength":
			n.minLength, err = count(kw, v)
		case "maxLength":
			n.maxLength, err = count(kw, v)
		case "minItems":
			n.minItems, err = count(kw, v)
		case "maxItems":
			n.maxItems, err = count(kw, v)
		case "properties":
			props, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("properties is not an object")
			}
			pnames := make([]string, 0, len(props))
			for name := range props {
				pnames = append(pnames, name)
			}
			sort.Strings(pnames)
			for _, name := range pnames {
				c, err := compileNode(props[name], false)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, key{name: name, n: c, bit: -1, prop: true})
			}
			n.isObject = true
		case "required":
			arr, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("required is not an array")
			}
			for _, item := range arr {
				name, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("required: %v is not a string", item)
				}
				if err := n.require(name); err != nil {
					return nil, err
				}
			}
			n.isObject = true
		case "additionalProperties":
			n.addl, err = compileNode(v, false)
			n.isObject = n.isObject || n.addl != nil
		case "items":
			if _, ok := v.([]any); ok {
				return nil, fmt.Errorf("items as an array: %w", ErrNotQuick)
			}
			n.items, err = compileNode(v, false)
		default:
			return nil, fmt.Errorf("keyword %s: %w", kw, ErrNotQuick)
		}
		if err != nil {
			return nil, err
		}
	}
	return n, nil
}

// require marks name required, adding a key for it if properties has
// none.
func (n *node) require(name string) error {
	i := -1
	for j := range n.keys {
		if n.keys[j].name == name {
			i = j
		}
	}
	if i < 0 {
		n.keys = append(n.keys, key{name: name, bit: -1})
		i = len(n.keys) - 1
	}
	if n.keys[i].bit >= 0 {
		return nil // named twice
	}
	if len(n.required) == 64 {
		return fmt.Errorf("more than 64 required properties: %w", ErrNotQuick)
	}
	n.keys[i].bit = len(n.required)
	n.reqMask |= 1 << len(n.required)
	n.required = append(n.required, i)
	return nil
}

func (n *node) compileType(v any) error {
	var list []any
	switch t := v.(type) {
	case string:
		list = []any{t}
	case []any:
		list = t
	default:
		return fmt.Errorf("type is neither a string nor an array")
	}
	for _, item := range list {
		found := false
		for _, tn := range typeNames {
			if item == tn.name {
				n.types |= tn.bit
				found = true
			}
		}
		if !found {
			return fmt.Errorf("type %v is not a JSON Schema type", item)
		}
	}
	if n.types == 0 {
		// "type": [] is refused by the meta-schema; keep it failing.
		return fmt.Errorf("type is an empty array")
	}
	return nil
}

// count reads a non-negative integer keyword (2.0 is one).
func count(kw string, v any) (int, error) {
	num, ok := v.(json.Number)
	if ok {
		if r, ok := new(big.Rat).SetString(string(num)); ok && r.IsInt() && r.Sign() >= 0 && r.Num().IsInt64() && r.Num().Int64() < 1<<31 {
			return int(r.Num().Int64()), nil
		}
	}
	return 0, fmt.Errorf("%s is not a non-negative integer", kw)
}

func toScalar(v any) (scalar, error) {
	switch x := v.(type) {
	case string:
		return scalar{kind: 's', s: x}, nil
	case json.Number:
		r, ok := new(big.Rat).SetString(string(x))
		if !ok {
			return scalar{}, fmt.Errorf("bad number %s", x)
		}
		return scalar{kind: 'n', s: string(x), num: r}, nil
	case bool:
		if x {
			return scalar{kind: 't'}, nil
		}
		return scalar{kind: 'f'}, nil
	case nil:
		return scalar{kind: '0'}, nil
	}
	return scalar{}, fmt.Errorf("an array or object value: %w", ErrNotQuick)
}

// display is a value as a reason shows it: strings in single quotes.
func display(s scalar) string {
	switch s.kind {
	case 's':
		return quote(s.s)
	case 'n':
		return s.s
	case 't':
		return "true"
	case 'f':
		return "false"
	}
	return "null"
}

func displayList(list []scalar) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = display(s)
	}
	return strings.Join(parts, ", ")
}

// quote is jsonschema's quoting of a name or string in its reasons.
func quote(s string) string {
	s = strconv.Quote(s)
	s = strings.ReplaceAll(s, `\"`, `"`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s[1:len(s)-1] + "'"
}

// failure is a mismatch found by check: the reason, and the path to the
// value from the innermost token out (reversed once, at the top).
type failure struct {
	reason string
	path   []string
}

// Check checks data, one compact JSON value (as codec.AppendCompact
// makes it), against the schema. It reads the text once and allocates
// nothing unless the data fails (or has a string with escapes, or a
// number of more than 15 characters, that a keyword has to look at).
func (s *Schema) Check(data []byte) (pointer, reason string, ok bool) {
	if s.root == nil {
		return "", "", true
	}
	_, f := s.root.check(data, 0)
	if f == nil {
		return "", "", true
	}
	var b strings.Builder
	for i := len(f.path) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(f.path[i], "~", "~0"), "/", "~1"))
	}
	return b.String(), f.reason, false
}

// Validate is Check as an error: a *MismatchError naming typ, or nil.
func (s *Schema) Validate(typ string, data []byte) error {
	ptr, reason, ok := s.Check(data)
	if ok {
		return nil
	}
	return &MismatchError{Type: typ, Pointer: ptr, Reason: reason}
}

func fail(format string, args ...any) *failure {
	return &failure{reason: fmt.Sprintf(format, args...)}
}

// check checks the value at d[i:] and returns the index past it.
func (n *node) check(d []byte, i int) (int, *failure) {
	if n == nil {
		return skip(d, i), nil
	}
	if n.never {
		return i, fail("false schema")
	}
	switch c := d[i]; {
	case c == '{':
		if n.types != 0 && n.types&tObject == 0 {
			return i, n.typeFailure("object")
		}
		if len(n.choices) > 0 {
			return i, fail("%s", n.choices[0].reason) // they hold scalars only
		}
		if !n.isObject {
			return skip(d, i), nil
		}
		return n.checkObject(d, i)
	case c == '[':
		if n.types != 0 && n.types&tArray == 0 {
			return i, n.typeFailure("array")
		}
		if len(n.choices) > 0 {
			return i, fail("%s", n.choices[0].reason)
		}
		return n.checkArray(d, i)
	case c == '"':
		return n.checkString(d, i)
	case c == 't' || c == 'f':
		end := i + 4
		if c == 'f' {
			end++
		}
		if n.types != 0 && n.types&tBoolean == 0 {
			return i, n.typeFailure("boolean")
		}
		if f := n.choose(c, nil, nil); f != nil {
			return i, f
		}
		return end, nil
	case c == 'n':
		if n.types != 0 && n.types&tNull == 0 {
			return i, n.typeFailure("null")
		}
		if f := n.choose('0', nil, nil); f != nil {
			return i, f
		}
		return i + 4, nil
	default:
		return n.checkNumber(d, i)
	}
}

func (n *node) typeFailure(got string) *failure {
	var want []string
	for _, tn := range typeNames {
		if n.types&tn.bit != 0 {
			want = append(want, tn.name)
		}
	}
	return fail("got %s, want %s", got, strings.Join(want, " or "))
}

// choose fails a value that is not one of the values of each of const
// and enum: kind is its kind ('t', 'f', '0', 's', 'n'), num a number's
// value, str a string's (decoded).
func (n *node) choose(kind byte, num *big.Rat, str []byte) *failure {
	for _, ch := range n.choices {
		if !ch.has(kind, num, str) {
			return fail("%s", ch.reason)
		}
	}
	return nil
}

func (ch *choice) has(kind byte, num *big.Rat, str []byte) bool {
	for _, e := range ch.values {
		switch {
		case kind == 's' && e.kind == 's':
			if e.s == string(str) {
				return true
			}
		case kind == 'n' && e.kind == 'n':
			if e.num.Cmp(num) == 0 {
				return true
			}
		case kind == e.kind && kind != 's' && kind != 'n':
			return true
		}
	}
	return false
}

func (n *node) checkObject(d []byte, i int) (int, *failure) {
	i++ // {
	var seen uint64
	var extra []string
	for d[i] != '}' {
		raw, escaped, end := stringAt(d, i)
		i = end + 1 // past the colon
		var k *key
		for j := range n.keys {
			if string(raw) == n.keys[j].name {
				k = &n.keys[j]
				break
			}
		}
		name := "" // the key, decoded when needed
		if escaped {
			name = unescape(raw)
			for j := range n.keys {
				if name == n.keys[j].name {
					k = &n.keys[j]
				}
			}
		}
		if k != nil && k.bit >= 0 {
			seen |= 1 << k.bit
		}
		child := n.addl
		if k != nil && k.prop {
			child = k.n
		}
		if (k == nil || !k.prop) && child != nil && child.never {
			// additionalProperties false: name every such key.
			extra = append(extra, keyName(raw, escaped, name))
			i = skip(d, i)
		} else {
			var f *failure
			if i, f = child.check(d, i); f != nil {
				f.path = append(f.path, keyName(raw, escaped, name))
				return i, f
			}
		}
		if d[i] == ',' {
			i++
		}
	}
	if len(extra) > 0 {
		return i, fail("additional properties %s not allowed", quoteList(extra))
	}
	if seen&n.reqMask != n.reqMask {
		var missing []string
		for _, j := range n.required {
			if seen&(1<<n.keys[j].bit) == 0 {
				missing = append(missing, n.keys[j].name)
			}
		}
		if len(missing) == 1 {
			return i, fail("missing property %s", quote(missing[0]))
		}
		return i, fail("missing properties %s", quoteList(missing))
	}
	return i + 1, nil
}

func keyName(raw []byte, escaped bool, decoded string) string {
	if escaped {
		return decoded
	}
	return string(raw)
}

func quoteList(names []string) string {
	parts := make([]string, len(names))
	for i, s := range names {
		parts[i] = quote(s)
	}
	return strings.Join(parts, ", ")
}

func (n *node) checkArray(d []byte, i int) (int, *failure) {
	i++ // [
	count := 0
	for d[i] != ']' {
		var f *failure
		if i, f = n.items.check(d, i); f != nil {
			f.path = append(f.path, strconv.Itoa(count))
			return i, f
		}
		count++
		if d[i] == ',' {
			i++
		}
	}
	if n.minItems >= 0 && count < n.minItems {
		return i, fail("minItems: got %d, want %d", count, n.minItems)
	}
	if n.maxItems >= 0 && count > n.maxItems {
		return i, fail("maxItems: got %d, want %d", count, n.maxItems)
	}
	return i + 1, nil
}

func (n *node) checkString(d []byte, i int) (int, *failure) {
	raw, escaped, end := stringAt(d, i)
	if n.types != 0 && n.types&tString == 0 {
		return i, n.typeFailure("string")
	}
	if len(n.choices) == 0 && n.minLength < 0 && n.maxLength < 0 {
		return end, nil
	}
	if escaped {
		raw = []byte(unescape(raw))
	}
	// A string has at most as many characters as bytes and at least a
	// quarter as many: count them only when that does not settle it.
	length := len(raw)
	if n.maxLength >= 0 && len(raw) > n.maxLength || n.minLength > len(raw)/4 {
		length = utf8.RuneCount(raw)
	}
	if f := n.choose('s', nil, raw); f != nil {
		return i, f
	}
	if n.minLength >= 0 && length < n.minLength {
		return i, fail("minLength: got %d, want %d", length, n.minLength)
	}
	if n.maxLength >= 0 && length > n.maxLength {
		return i, fail("maxLength: got %d, want %d", length, n.maxLength)
	}
	return end, nil
}

func (n *node) checkNumber(d []byte, i int) (int, *failure) {
	end := i
	frac := false
	for end < len(d) {
		c := d[end]
		if c == '.' || c == 'e' || c == 'E' {
			frac = true
		} else if c != '-' && c != '+' && (c < '0' || c > '9') {
			break
		}
		end++
	}
	lit := d[i:end]
	if n.types != 0 && n.types&tNumber == 0 {
		if n.types&tInteger == 0 || frac && !ratOf(lit).IsInt() {
			return i, n.typeFailure("number")
		}
	}
	if len(n.choices) > 0 {
		if f := n.choose('n', ratOf(lit), nil); f != nil {
			return i, f
		}
	}
	for _, b := range n.bounds {
		var c int // the number compared to the bound
		if len(lit) <= 15 && len(b.text) <= 15 {
			f, ok := shortDecimal(lit)
			if !ok {
				f, _ = strconv.ParseFloat(string(lit), 64)
			}
			switch {
			case f < b.f:
				c = -1
			case f > b.f:
				c = 1
			}
		} else {
			c = ratOf(lit).Cmp(b.r)
		}
		if b.upper && (c > 0 || b.exclusive && c == 0) || !b.upper && (c < 0 || b.exclusive && c == 0) {
			return i, fail("%s: got %s, want %s", b.keyword, lit, b.text)
		}
	}
	return end, nil
}

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// shortDecimal is the value of a number literal of at most 15
// characters without an exponent, as strconv.ParseFloat rounds it: its
// digits make an integer below 2^53 and it is divided by an exact power of
// ten, one correctly rounded operation (strconv's own exact fast path).
func shortDecimal(lit []byte) (float64, bool) {
	neg := len(lit) > 0 && lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	var mant int64
	scale, digits, dot := 0, 0, false
	for _, c := range lit {
		switch {
		case c >= '0' && c <= '9':
			mant = mant*10 + int64(c-'0')
			digits++
			if dot {
				scale++
			}
		case c == '.' && !dot:
			dot = true
		default:
			return 0, false
		}
	}
	if digits == 0 || digits > 15 {
		return 0, false
	}
	f := float64(mant) / pow10[scale]
	if neg {
		f = -f
	}
	return f, true
}

func ratOf(lit []byte) *big.Rat {
	r, ok := new(big.Rat).SetString(string(lit))
	if !ok {
		return new(big.Rat)
	}
	return r
}

// stringAt returns the content of the string at d[i] (its quotes
// excluded), whether it has escapes, and the index past its closing
// quote.
func stringAt(d []byte, i int) (raw []byte, escaped bool, end int) {
	// Most strings have no escape: find the quote, and no backslash
	// before it (both searches are vectorised).
	if q := bytes.IndexByte(d[i+1:], '"'); q >= 0 && bytes.IndexByte(d[i+1:i+1+q], '\\') < 0 {
		return d[i+1 : i+1+q], false, i + 2 + q
	}
	j := i + 1
	for {
		switch d[j] {
		case '"':
			return d[i+1 : j], escaped, j + 1
		case '\\':
			escaped = true
			j++
		}
		j++
	}
}

func unescape(raw []byte) string {
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if err := json.Unmarshal(q, &s); err != nil {
		return string(raw)
	}
	return s
}

// skip returns the index past the value at d[i].
func skip(d []byte, i int) int {
	switch d[i] {
	case '"':
		_, _, end := stringAt(d, i)
		return end
	case '{', '[':
		depth := 0
		for {
			switch d[i] {
			case '"':
				_, _, i = stringAt(d, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(d) && d[i] != ',' && d[i] != '}' && d[i] != ']' {
		i++
	}
	return i
}
