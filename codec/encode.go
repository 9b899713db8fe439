package codec

// The JSON encoding of events: the envelope every command prints (CLI.md)
// and ParseEnvelope reads back, and the string quoting it shares with
// fold's canonical state encoding.

import (
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
