package codec

// JSON encoding: of events, the envelope every command prints (CLI.md)
// and ParseEnvelope reads back; of decoded values, the canonical form of a
// fold's state (EncodeJSON). Both quote strings with AppendJSONString.

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeFormat is RFC 3339 with nanoseconds, always nine digits, so times
// sort as strings and line up in columns.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// AppendEventJSON encodes the envelope of CLI.md, compact, keys in the
// documented order; metadata is left out when empty.
func AppendEventJSON(dst []byte, e *Event) []byte {
	return appendEnvelope(dst, e.Position, e.Stream, e.Version, e.Type, e.Time, e.ID, e.Data, e.Metadata)
}

// AppendRecordJSON encodes a record's envelope straight from its bytes,
// with no allocation: the replay path.
func AppendRecordJSON(dst []byte, r *Record) []byte {
	return appendEnvelope(dst, r.Position, r.Stream, r.Version, r.Type, time.Unix(0, r.Time), r.ID, r.Data, r.Metadata)
}

func appendEnvelope[S string | []byte](dst []byte, pos uint64, stream S, version uint64, typ S, t time.Time, id S, data, meta []byte) []byte {
	dst = append(dst, `{"position":`...)
	dst = strconv.AppendUint(dst, pos, 10)
	dst = append(dst, `,"stream":`...)
	dst = appendName(dst, stream)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendUint(dst, version, 10)
	dst = append(dst, `,"type":`...)
	dst = appendName(dst, typ)
	dst = append(dst, `,"time":"`...)
	dst = t.UTC().AppendFormat(dst, TimeFormat)
	dst = append(dst, `","id":`...)
	dst = appendName(dst, id)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	if len(meta) > 0 {
		dst = append(dst, `,"metadata":`...)
		dst = append(dst, meta...)
	}
	return append(dst, '}')
}

// appendName quotes a stream name, type or id. They are valid UTF-8
// without control characters (checked on append), so only quote and
// backslash need escaping; anything else falls back to AppendJSONString.
func appendName[S string | []byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return AppendJSONString(dst, string(s))
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// AppendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// EncodeJSON returns the canonical compact JSON of a decoded value (a
// fold's state): object keys sorted byte-wise (as encoding/json sorts map
// keys), no insignificant whitespace, strings escaped as evt prints them
// (AppendJSONString: no HTML escaping), json.Number as its text. The
// values are those DecodeJSON and gojq produce: nil, bool, string,
// json.Number, float64, int, *big.Int, []any and map[string]any; any other
// type is an error. Numbers that are not JSON follow jq: NaN is null,
// ±Inf is ±1.7976931348623157e+308.
func EncodeJSON(v any) ([]byte, error) {
	return AppendJSON(nil, v)
}

// AppendJSON appends EncodeJSON(v) to dst. On error the returned slice
// holds dst's original length.
func AppendJSON(dst []byte, v any) ([]byte, error) {
	out, err := appendValue(dst, v)
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
		return AppendJSONString(dst, v), nil
	case json.Number:
		if !ValidNumber(string(v)) {
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
			dst = AppendJSONString(dst, k)
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
