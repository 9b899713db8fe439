package natsjs

import (
	"crypto/sha256"
	"encoding/base64"
	"hash/fnv"
	"strings"

	"github.com/evtdev/evt/codec"
)

// Buckets is how many partition buckets the subjects spread the streams
// over (the <bb> token): 256, two hex digits, recorded in the JetStream
// stream's metadata as evt_buckets so that a later evt can tell a store
// laid out another way.
const Buckets = 256

// escapeToken makes s one subject token: the server splits subjects at
// '.', refuses whitespace in them, and treats a token that is exactly '*'
// or '>' as a wildcard. Those bytes, '%' itself and every other control
// byte become %XX; an empty token is "%", which no escaped token can be
// (a '%' of the text is always followed by two hex digits).
func escapeToken(s string) string {
	if s == "" {
		return "%"
	}
	if s == "*" || s == ">" {
		return "%" + hex2(s[0])
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteString(hex2(c))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func needsEscape(c byte) bool { return c == '%' || c == '.' || c <= ' ' || c == 0x7f }

func hex2(c byte) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// unescapeToken reverses escapeToken.
func unescapeToken(t string) string {
	if t == "%" {
		return ""
	}
	if strings.IndexByte(t, '%') < 0 {
		return t
	}
	b := make([]byte, 0, len(t))
	for i := 0; i < len(t); i++ {
		if t[i] == '%' && i+2 < len(t) {
			b = append(b, unhex(t[i+1])<<4|unhex(t[i+2]))
			i += 2
			continue
		}
		b = append(b, t[i])
	}
	return string(b)
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return 0
}

// bucket is the partition bucket of a stream: FNV-1a-32 of its name
// modulo Buckets, as two hex digits.
func bucket(stream string) string {
	h := fnv.New32a()
	h.Write([]byte(stream))
	return hex2(byte(h.Sum32() % Buckets))
}

// subjectOf is the subject of an evt stream: ROOT.<bb>.<category>.<name>.
func (s *Store) subjectOf(stream string) string {
	return s.root + "." + bucket(stream) + "." + escapeToken(codec.Category(stream)) + "." + escapeToken(stream)
}

// streamOf is the evt stream of a subject subjectOf made, or "" for a
// subject that is none of evt's.
func (s *Store) streamOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, s.root+".")
	if !ok {
		return ""
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return ""
	}
	return unescapeToken(rest[i+1:])
}

// filterOf is the subject filter that holds every stream sel can match:
// the stream's own subject, its category's subjects when the selection
// fixes the category (a glob such as account-*), or every subject. What
// the filter lets through that sel does not match is dropped by the
// reader.
func (s *Store) filterOf(sel codec.Selection) string {
	if name, ok := sel.Stream(); ok {
		return s.subjectOf(name)
	}
	if len(sel.Parts()) > 1 {
		return s.root + ".>" // a union (several selections): the reader matches each subject
	}
	if cat, ok := globCategory(sel.String()); ok && !sel.All() {
		return s.root + ".*." + escapeToken(cat) + ".>"
	}
	return s.root + ".>"
}

// globCategory returns the category every stream a glob matches has:
// known when a '-' comes before the first glob character.
func globCategory(glob string) (string, bool) {
	for i := 0; i < len(glob); i++ {
		switch glob[i] {
		case '-':
			return glob[:i], true
		case '*', '?', '[', '\\':
			return "", false
		}
	}
	return "", false
}

// msgID is the Nats-Msg-Id of an event: the server dedupes per JetStream
// stream, evt ids are per evt stream, so the id is keyed by both.
func msgID(stream string, id []byte) string {
	h := sha256.New()
	h.Write([]byte(stream))
	h.Write([]byte{0})
	h.Write(id)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))[:22]
}

// subjectMatches reports whether a literal subject matches a subject
// filter with NATS wildcards ('*' one token, '>' the rest).
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, t := range ft {
		if t == ">" {
			return len(st) > i
		}
		if i >= len(st) || (t != "*" && t != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}
