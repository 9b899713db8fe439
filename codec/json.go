package codec

// evt's one JSON scanner: a hand-written validator and compactor, the
// envelope parser of `evt append`, and (decode.go) the decoder into Go
// values that folds and --jq use, all built on the same grammar below.
//
// Why not encoding/json: a bulk append must take about 500k events/s of
// 200-byte lines, 2 µs a line in all. json.Unmarshal into a struct takes
// about 3 µs for such a line (reflection, allocations; see
// BenchmarkParseEnvelope), and json.Valid followed by json.Compact reads
// every byte twice. The scanner below reads each byte
// once, validates and compacts in the same pass, and copies already-compact
// input with a single append.
//
// The grammar is RFC 8259, with two deliberate restrictions that
// encoding/json does not have:
//
//   - Strings must be valid UTF-8. Stored data is printed back verbatim, so
//     a stray byte would be passed on to every consumer; encoding/json
//     accepts it silently and replaces it only when it decodes.
//   - Containers nest at most MaxJSONDepth deep (encoding/json: 10000). The
//     parser recurses once per level, and data read from stdin is hostile.
//
// Everything the scanner accepts, encoding/json accepts too, and
// AppendCompact's output is byte for byte what json.Compact produces
// (FuzzAppendCompact checks both); DecodeJSON returns what encoding/json
// returns with UseNumber (FuzzDecodeJSON).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxJSONDepth is how deeply arrays and objects may nest in one JSON value.
// Real event data nests a handful of levels; 512 keeps the recursion of the
// parser (one Go stack frame per level) small for hostile input.
const MaxJSONDepth = 512

// ErrBadJSON is matched (errors.Is) by every *SyntaxError.
var ErrBadJSON = errors.New("codec: invalid JSON")

// ErrBadEnvelope is matched (errors.Is) by every *EnvelopeError.
var ErrBadEnvelope = errors.New("codec: invalid event envelope")

// SyntaxError locates the first byte at which input stops being JSON.
type SyntaxError struct {
	// Offset is the 0-based index of the offending byte in the input, or
	// the input's length when it ended too early.
	Offset int
	// Msg says what was wrong there, e.g. "unexpected '}'".
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// Unwrap lets errors.Is(err, ErrBadJSON) match.
func (e *SyntaxError) Unwrap() error { return ErrBadJSON }

// EnvelopeError is a line that is valid JSON but not a valid envelope: an
// unknown or duplicate field, a field of the wrong type, a missing field.
type EnvelopeError struct {
	// Offset is the 0-based index in the line of the key or value at fault
	// (of the closing '}' for a missing field).
	Offset int
	// Msg is the whole message, e.g. `unknown field "foo"`. It carries no
	// prefix because the caller adds the line number.
	Msg string
}

func (e *EnvelopeError) Error() string { return e.Msg }

// Unwrap lets errors.Is(err, ErrBadEnvelope) match.
func (e *EnvelopeError) Unwrap() error { return ErrBadEnvelope }

// AppendCompact appends to dst the compact form of the single JSON value in
// src: whitespace outside strings is removed, every other byte is copied
// unchanged (escapes are not normalised). Whitespace may surround the value;
// anything else after it is an error. On error it returns a *SyntaxError
// and dst with its original length (bytes past that length may have been
// written).
func AppendCompact(dst, src []byte) ([]byte, error) {
	s := jsonScanner{src: src, dst: dst}
	s.skipSpace()
	if _, err := s.compactValue(); err != nil {
		return dst, err
	}
	if err := s.end(); err != nil {
		return dst, err
	}
	return s.dst, nil
}

// end checks that nothing but whitespace follows the top-level value.
func (s *jsonScanner) end() error {
	s.skipSpace()
	if s.i < len(s.src) {
		return s.unexpected(" after top-level value")
	}
	return nil
}

// jsonScanner validates src from index i on and appends the compact form
// of the values it is asked to read to dst.
//
// Compaction copies runs, not bytes: src[run:i] is output that has been
// validated but not yet appended. Only whitespace between tokens ends a run
// (see ws), so compact input costs one append per value.
//
// A decoding scanner (decode.go) sets noCopy: value then only validates,
// and dst is scratch space for unescaped strings.
type jsonScanner struct {
	src    []byte
	i      int // next byte of src to read
	dst    []byte
	run    int  // start of the pending, not yet copied, output in src
	depth  int  // arrays and objects open around i
	noCopy bool // validate only: whitespace inside values is not copied out
}

// valueSpan is a value's place in jsonScanner.dst, as offsets because dst
// may be reallocated by later appends. start < 0 means absent.
type valueSpan struct{ start, end int }

// compactValue reads one value starting at i (no leading whitespace) and
// appends its compact form to dst.
func (s *jsonScanner) compactValue() (valueSpan, error) {
	start := len(s.dst)
	s.run = s.i
	if err := s.value(); err != nil {
		return valueSpan{}, err
	}
	s.dst = append(s.dst, s.src[s.run:s.i]...)
	return valueSpan{start, len(s.dst)}, nil
}

// skipValue validates one value and leaves dst as it was: ignored envelope
// fields and values that only matter for their error message.
func (s *jsonScanner) skipValue() error {
	mark := len(s.dst)
	_, err := s.compactValue()
	s.dst = s.dst[:mark]
	return err
}

func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

// skipSpace moves i past whitespace. Used outside compactValue, where
// nothing is being copied.
func (s *jsonScanner) skipSpace() {
	for s.i < len(s.src) && isJSONSpace(s.src[s.i]) {
		s.i++
	}
}

// ws moves i past whitespace inside a value being compacted: it flushes the
// pending run before the whitespace and starts a new one after it. ws is
// called between every two tokens, so it is kept small enough to inline:
// one comparison when there is no whitespace, the usual case.
func (s *jsonScanner) ws() {
	if s.i < len(s.src) && s.src[s.i] <= ' ' {
		s.flushSpace()
	}
}

func (s *jsonScanner) flushSpace() {
	if !isJSONSpace(s.src[s.i]) {
		return // a control character: value() will report it
	}
	if s.noCopy {
		s.skipSpace()
		return
	}
	s.dst = append(s.dst, s.src[s.run:s.i]...)
	s.skipSpace()
	s.run = s.i
}

// value reads one value of any kind starting exactly at i.
func (s *jsonScanner) value() error {
	if s.i >= len(s.src) {
		return s.unexpected("")
	}
	switch c := s.src[s.i]; {
	case c == '"':
		_, err := s.str()
		return err
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.unexpected("")
}

// open counts one more level of nesting, refusing to go past MaxJSONDepth.
func (s *jsonScanner) open() error {
	s.depth++
	if s.depth > MaxJSONDepth {
		return &SyntaxError{Offset: s.i, Msg: "nested deeper than " + strconv.Itoa(MaxJSONDepth) + " levels"}
	}
	s.i++
	return nil
}

func (s *jsonScanner) object() error {
	if err := s.open(); err != nil {
		return err
	}
	s.ws()
	if s.i < len(s.src) && s.src[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if _, err := s.key(); err != nil {
			return err
		}
		s.ws()
		if err := s.colon(); err != nil {
			return err
		}
		s.ws()
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		more, err := s.objectNext()
		if err != nil {
			return err
		}
		if !more {
			s.depth--
			return nil
		}
		s.ws()
	}
}

// key, colon and objectNext are the object grammar shared by object, the
// envelope parser and the decoder, so all report the same error at the
// same byte. key reads a key string and says whether it has escapes.
func (s *jsonScanner) key() (escaped bool, err error) {
	if s.i >= len(s.src) || s.src[s.i] != '"' {
		return false, s.unexpected(", expected object key")
	}
	return s.str()
}

func (s *jsonScanner) colon() error {
	if s.i >= len(s.src) || s.src[s.i] != ':' {
		return s.unexpected(", expected ':'")
	}
	s.i++
	return nil
}

// objectNext reads the ',' (more members follow) or '}' after a member.
func (s *jsonScanner) objectNext() (more bool, err error) {
	if s.i < len(s.src) {
		switch s.src[s.i] {
		case ',':
			s.i++
			return true, nil
		case '}':
			s.i++
			return false, nil
		}
	}
	return false, s.unexpected(", expected ',' or '}'")
}

func (s *jsonScanner) array() error {
	if err := s.open(); err != nil {
		return err
	}
	s.ws()
	if s.i < len(s.src) && s.src[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.i < len(s.src) {
			switch s.src[s.i] {
			case ',':
				s.i++
				s.ws()
				continue
			case ']':
				s.i++
				s.depth--
				return nil
			}
		}
		return s.unexpected(", expected ',' or ']'")
	}
}

// plainStringByte[c] is true for the bytes that can be copied inside a
// string without a second look: printable ASCII except '"' and '\\'. The
// table makes the hot loop of str one load and one branch per byte.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hasSpecialByte reports whether any of the eight bytes in x is not a
// plainStringByte, so str can skip plain text eight bytes per step (SWAR).
// Per byte b, with the high bits as flags:
//
//	b - 0x20          sets the high bit when b < 0x20 (it wraps)
//	(b ^ '"') - 1     sets it when b == '"'
//	(b ^ '\\') - 1    sets it when b == '\\'
//	b                 has it when b >= 0x80
//
// The subtractions also flag bytes >= 0x80, which b flags anyway, and a
// borrow only crosses into the next byte from a byte that was flagged, so
// the "any byte" answer is exact.
func hasSpecialByte(x uint64) bool {
	const ones = 0x0101010101010101
	const high = 0x8080808080808080
	return ((x-ones*0x20)|((x^ones*'"')-ones)|((x^ones*'\\')-ones)|x)&high != 0
}

// str reads a string starting at its opening quote. Nothing is decoded:
// the escapes are checked and the bytes stay as they are; escaped says
// whether there were any, so a decoder knows whether to unescape.
func (s *jsonScanner) str() (escaped bool, err error) {
	src := s.src
	i := s.i + 1
	for {
		for i+8 <= len(src) && !hasSpecialByte(binary.LittleEndian.Uint64(src[i:])) {
			i += 8
		}
		for i < len(src) && plainStringByte[src[i]] {
			i++
		}
		if i >= len(src) {
			s.i = i
			return false, s.unexpected(" in string")
		}
		switch c := src[i]; {
		case c == '"':
			s.i = i + 1
			return escaped, nil
		case c == '\\':
			n, err := escapeLen(src, i)
			if err != nil {
				return false, err
			}
			escaped = true
			i += n
		case c < 0x20:
			// RFC 8259 §7: control characters must be escaped. A raw
			// newline here would also split an NDJSON line.
			return false, &SyntaxError{Offset: i, Msg: fmt.Sprintf("control character 0x%02x in string", c)}
		default: // c >= 0x80: a multi-byte UTF-8 sequence, or garbage
			r, n := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && n == 1 {
				return false, &SyntaxError{Offset: i, Msg: "invalid UTF-8 in string"}
			}
			i += n
		}
	}
}

// escapeLen checks the escape sequence at src[i] == '\\' and returns its
// length: 2, or 6 for \uXXXX. Surrogates are not paired up here: "\ud800"
// alone is valid JSON (RFC 8259 §8.2 leaves its meaning open), and
// appendUnescaped decodes it as U+FFFD the way encoding/json does.
func escapeLen(src []byte, i int) (int, error) {
	if i+1 >= len(src) {
		return 0, &SyntaxError{Offset: len(src), Msg: "unexpected end of input in string"}
	}
	switch src[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		for j := i + 2; j < i+6; j++ {
			if j >= len(src) {
				return 0, &SyntaxError{Offset: len(src), Msg: "unexpected end of input in \\u escape"}
			}
			if hexValue(src[j]) < 0 {
				return 0, &SyntaxError{Offset: j, Msg: "invalid \\u escape: " + describeByte(src, j) + " is not a hex digit"}
			}
		}
		return 6, nil
	}
	return 0, &SyntaxError{Offset: i, Msg: "invalid escape \\" + describeByte(src, i+1)}
}

func hexValue(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? exactly.
// Numbers are never converted: the store keeps the text, so 1e400 and
// 12345678901234567890 survive unchanged.
func (s *jsonScanner) number() error {
	if s.src[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.src) {
		return s.unexpected(" in number")
	}
	switch c := s.src[s.i]; {
	case c == '0':
		s.i++
		// "01" would otherwise fail later as "unexpected '1' after
		// top-level value"; say what is actually wrong.
		if s.i < len(s.src) && isASCIIDigit(s.src[s.i]) {
			return &SyntaxError{Offset: s.i, Msg: "leading zero in number"}
		}
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return s.unexpected(" in number, expected digit")
	}
	if s.i < len(s.src) && s.src[s.i] == '.' {
		s.i++
		if err := s.someDigits(" after decimal point"); err != nil {
			return err
		}
	}
	if s.i < len(s.src) && (s.src[s.i] == 'e' || s.src[s.i] == 'E') {
		s.i++
		if s.i < len(s.src) && (s.src[s.i] == '+' || s.src[s.i] == '-') {
			s.i++
		}
		if err := s.someDigits(" in exponent"); err != nil {
			return err
		}
	}
	return nil
}

// ValidNumber reports whether s is exactly one JSON number, as the
// scanner reads them: fold checks the numbers of a spec and of a state
// with it.
func ValidNumber(s string) bool {
	if s == "" {
		return false
	}
	sc := jsonScanner{src: []byte(s)}
	return sc.number() == nil && sc.i == len(s)
}

func isASCIIDigit(c byte) bool { return c >= '0' && c <= '9' }

func (s *jsonScanner) digits() {
	for s.i < len(s.src) && isASCIIDigit(s.src[s.i]) {
		s.i++
	}
}

// someDigits reads one or more digits: "1." and "1e" are not numbers.
func (s *jsonScanner) someDigits(where string) error {
	if s.i >= len(s.src) || !isASCIIDigit(s.src[s.i]) {
		return s.unexpected(where + ", expected digit")
	}
	s.digits()
	return nil
}

func (s *jsonScanner) literal(lit string) error {
	for j := 0; j < len(lit); j++ {
		if s.i >= len(s.src) || s.src[s.i] != lit[j] {
			return s.unexpected(" in literal " + lit)
		}
		s.i++
	}
	return nil
}

// unexpected is the syntax error for the byte at i, or for the end of
// input, with suffix appended to the message.
func (s *jsonScanner) unexpected(suffix string) error {
	src, i := s.src, s.i
	if i >= len(src) {
		return &SyntaxError{Offset: len(src), Msg: "unexpected end of input" + suffix}
	}
	return &SyntaxError{Offset: i, Msg: "unexpected " + describeByte(src, i) + suffix}
}

// describeByte names the character at src[i] for an error message: quoted
// when printable, as a hex byte otherwise, so the message stays one clean
// line whatever the input.
func describeByte(src []byte, i int) string {
	r, n := utf8.DecodeRune(src[i:])
	if (r != utf8.RuneError || n == 3) && strconv.IsPrint(r) {
		return "'" + string(r) + "'"
	}
	return fmt.Sprintf("byte 0x%02x", src[i])
}

// Envelope is one line of `evt append` input in the envelope form:
//
//	{"stream":"account-7","type":"Deposited","data":{"amount":50},"metadata":{"correlation_id":"c-1"},"id":"…"}
//
// Data and Metadata alias the buffer given to ParseEnvelope (see there).
type Envelope struct {
	Stream, Type, ID string // unescaped; ID is "" when absent
	// Data is the compact "data" value; the literal null when absent.
	// Metadata is the compact "metadata" value; nil when absent, null or
	// {}, because the printed envelope omits empty metadata.
	Data, Metadata []byte
	HasData        bool // "data" was present (even as null)
	// Time is the "time" value as it stands in the line (for an envelope
	// evt printed, a JSON string, quotes included), nil when absent. It
	// aliases the line, and is only read by evt import: append ignores it.
	Time []byte
}

// The envelope's fields, as bits so one int detects duplicates.
const (
	fieldStream = 1 << iota
	fieldType
	fieldData
	fieldMetadata
	fieldID
	fieldPosition
	fieldVersion
	fieldTime
)

// ParseEnvelope parses line, which must hold one JSON object (optionally
// surrounded by whitespace), into env, in one pass and without allocating
// beyond the three strings.
//
// Keys: "stream" and "type" (strings, required), "id" (string, optional),
// "data" and "metadata" (any JSON, optional); "position", "version" and
// "time" are checked for syntax and ignored ("time" is passed on raw in
// env.Time). Any other key, a repeated key,
// or a string field of another type is an *EnvelopeError. Names are not
// validated here: that is ValidateStream's and ValidateType's job.
//
// The compact data and metadata are appended to buf, and the grown buf is
// returned; env.Data and env.Metadata are subslices of it (with capacity
// clipped, so appending to one cannot overwrite the other). They stay valid
// as long as those bytes of buf are not overwritten: passing the returned
// buf to the next call keeps every earlier envelope intact (a whole batch
// can share one buffer), passing buf[:0] invalidates them.
//
// Errors: a *SyntaxError if the line is not JSON (it always wins, so a
// broken line is reported as broken JSON even if it also has an unknown
// field), else the first *EnvelopeError. On error env is zeroed and buf is
// returned with its original length.
func ParseEnvelope(line []byte, env *Envelope, buf []byte) ([]byte, error) {
	*env = Envelope{}
	s := jsonScanner{src: line, dst: buf}
	data, meta, err := s.envelope(env)
	if err != nil {
		*env = Envelope{}
		return buf, err
	}
	if data.start < 0 {
		data.start = len(s.dst)
		s.dst = append(s.dst, "null"...)
		data.end = len(s.dst)
	} else {
		env.HasData = true
	}
	// Sliced only now: an earlier append may have moved dst.
	env.Data = s.dst[data.start:data.end:data.end]
	if meta.start >= 0 {
		env.Metadata = s.dst[meta.start:meta.end:meta.end]
	}
	return s.dst, nil
}

// envelope does ParseEnvelope's work. Envelope errors are only recorded
// (first one wins) and parsing goes on, so that a syntax error later in the
// line takes precedence.
func (s *jsonScanner) envelope(env *Envelope) (data, meta valueSpan, err error) {
	data, meta = valueSpan{-1, -1}, valueSpan{-1, -1}
	var bad *EnvelopeError
	fail := func(off int, format string, args ...any) {
		if bad == nil {
			bad = &EnvelopeError{Offset: off, Msg: fmt.Sprintf(format, args...)}
		}
	}

	s.skipSpace()
	if s.i < len(s.src) && s.src[s.i] != '{' {
		// Valid JSON of the wrong kind gets its own message; anything
		// else gets the syntax error AppendCompact would give.
		start := s.i
		if err := s.skipValue(); err != nil {
			return data, meta, err
		}
		s.skipSpace()
		if s.i < len(s.src) {
			return data, meta, s.unexpected(" after top-level value")
		}
		return data, meta, &EnvelopeError{Offset: start, Msg: "event must be a JSON object, not " + kindOf(s.src[start])}
	}
	if s.i >= len(s.src) {
		return data, meta, s.unexpected("")
	}

	// The top-level object, by hand: the same grammar and error messages
	// as object, but each value goes where its key says. Whitespace here
	// is skipped with skipSpace, never ws: nothing at this level is copied.
	if err := s.open(); err != nil {
		return data, meta, err
	}
	seen := 0
	s.skipSpace()
	if s.i < len(s.src) && s.src[s.i] == '}' {
		s.i++
	} else {
		for {
			keyOff := s.i
			escaped, err := s.key()
			if err != nil {
				return data, meta, err
			}
			field, name := s.envelopeKey(keyOff, escaped)
			switch {
			case field == 0:
				fail(keyOff, "unknown field %q", clip(name))
			case seen&field != 0:
				fail(keyOff, "duplicate field %q", name)
			}
			seen |= field
			s.skipSpace()
			if err := s.colon(); err != nil {
				return data, meta, err
			}
			s.skipSpace()

			valueOff := s.i
			switch field {
			case fieldStream, fieldType, fieldID:
				var v string
				var ok bool
				if v, ok, err = s.stringValue(); err == nil && !ok {
					fail(valueOff, "field %q must be a string", name)
				}
				switch field {
				case fieldStream:
					env.Stream = v
				case fieldType:
					env.Type = v
				default:
					env.ID = v
				}
			case fieldData:
				data, err = s.compactValue()
			case fieldMetadata:
				meta, err = s.compactValue()
				// Printed envelopes omit empty metadata; store it the way
				// it will be printed. Nothing was appended after it yet,
				// so truncating removes exactly its bytes.
				if err == nil && isEmptyMetadata(s.dst[meta.start:meta.end]) {
					s.dst = s.dst[:meta.start]
					meta = valueSpan{-1, -1}
				}
			case fieldTime: // kept raw; checked only by evt import
				err = s.skipValue()
				env.Time = s.src[valueOff:s.i:s.i]
			default: // ignored and unknown keys: valid JSON, any type
				err = s.skipValue()
			}
			if err != nil {
				return data, meta, err
			}

			s.skipSpace()
			more, err := s.objectNext()
			if err != nil {
				return data, meta, err
			}
			if !more {
				break
			}
			s.skipSpace()
		}
	}
	end := s.i - 1 // the closing '}'
	s.skipSpace()
	if s.i < len(s.src) {
		return data, meta, s.unexpected(" after top-level value")
	}
	if seen&fieldStream == 0 {
		fail(end, `missing field "stream"`)
	}
	if seen&fieldType == 0 {
		fail(end, `missing field "type"`)
	}
	if bad != nil {
		return data, meta, bad
	}
	return data, meta, nil
}

// envelopeKey looks up the key string that s.key just read at keyOff and
// returns its field bit and name (for messages). A key with escapes
// ("str\u0065am" is "stream") is decoded into the spare end of dst first,
// so even that costs no allocation on the success path.
func (s *jsonScanner) envelopeKey(keyOff int, escaped bool) (field int, name string) {
	raw := s.src[keyOff+1 : s.i-1]
	if !escaped {
		return fieldName(raw)
	}
	mark := len(s.dst)
	s.dst = appendUnescaped(s.dst, raw)
	field, name = fieldName(s.dst[mark:])
	s.dst = s.dst[:mark]
	return field, name
}

// fieldName maps a key to its field bit (0 for an unknown key) and its
// name. The switch on string(key) does not allocate; only an unknown key,
// which is an error, is copied into a string. Keys are matched exactly:
// unlike encoding/json, "Stream" is not "stream".
func fieldName(key []byte) (int, string) {
	switch string(key) {
	case "stream":
		return fieldStream, "stream"
	case "type":
		return fieldType, "type"
	case "data":
		return fieldData, "data"
	case "metadata":
		return fieldMetadata, "metadata"
	case "id":
		return fieldID, "id"
	case "position": // printed envelopes can be piped back: evt tail | evt append
		return fieldPosition, "position"
	case "version":
		return fieldVersion, "version"
	case "time":
		return fieldTime, "time"
	}
	return 0, string(key)
}

// stringValue reads a value that should be a string and returns it
// decoded. ok is false (and err nil) for valid JSON of another type.
func (s *jsonScanner) stringValue() (v string, ok bool, err error) {
	if s.i >= len(s.src) || s.src[s.i] != '"' {
		return "", false, s.skipValue()
	}
	start := s.i
	escaped, err := s.str()
	if err != nil {
		return "", false, err
	}
	raw := s.src[start+1 : s.i-1]
	if !escaped {
		return string(raw), true, nil // the common case: one allocation
	}
	// Decode in dst's spare room, copy out, give the room back.
	mark := len(s.dst)
	s.dst = appendUnescaped(s.dst, raw)
	v = string(s.dst[mark:])
	s.dst = s.dst[:mark]
	return v, true, nil
}

// isEmptyMetadata: compact null or {}.
func isEmptyMetadata(v []byte) bool {
	return string(v) == "null" || string(v) == "{}"
}

// kindOf names the JSON type that starts with c, for error messages.
func kindOf(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// appendUnescaped appends the decoded content of a JSON string whose body (the
// bytes between the quotes) str has already validated. \uXXXX escapes are
// decoded as UTF-16: a surrogate pair becomes one rune, a surrogate that is
// not part of a pair becomes U+FFFD, as encoding/json does.
func appendUnescaped(dst, body []byte) []byte {
	for i := 0; i < len(body); {
		if body[i] != '\\' {
			j := bytes.IndexByte(body[i:], '\\')
			if j < 0 {
				return append(dst, body[i:]...)
			}
			dst = append(dst, body[i:i+j]...)
			i += j
			continue
		}
		c := body[i+1]
		i += 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(body[i:])
			i += 4
			if r >= 0xd800 && r < 0xdc00 && i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
				if r2 := hex4(body[i+2:]); r2 >= 0xdc00 && r2 < 0xe000 {
					r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
					i += 6
				}
			}
			// A lone surrogate is not a Unicode scalar value;
			// AppendRune writes U+FFFD for it.
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
	return dst
}

// hex4 decodes four hex digits that escapeLen has validated.
func hex4(b []byte) rune {
	return hexValue(b[0])<<12 | hexValue(b[1])<<8 | hexValue(b[2])<<4 | hexValue(b[3])
}
