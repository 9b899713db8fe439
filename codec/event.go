// Package codec is evt's data: the Event, the on-disk record framing, the
// NDJSON input readers, the JSON scanner (validation, compaction, the
// envelope, decoding to Go values), cursors and selections. It knows
// nothing of files, locks or terminals: printing is cmd/output's.
package codec

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one stored event, as every command prints it (the envelope).
type Event struct {
	Position uint64    // global, dense, starts at 1
	Stream   string    // stream name, see ValidateStream
	Version  uint64    // number inside the stream, dense, starts at 1
	Type     string    // event type, see ValidateType
	Time     time.Time // set by the store at append, UTC
	ID       string    // unique inside the stream
	Data     []byte    // compact JSON, never empty
	Metadata []byte    // compact JSON, or nil when absent
}

// Limits on names. Stream names are capped so a record header can carry the
// length in one byte's worth of range and so names stay usable as keys.
const (
	MaxStreamLen = 255
	MaxTypeLen   = 255
	MaxIDLen     = 128
)

// Errors for names that cannot be stored. Users read them after "evt: ",
// so they carry no package prefix.
var (
	ErrBadStream = errors.New("invalid stream name")
	ErrBadType   = errors.New("invalid event type")
	ErrBadID     = errors.New("invalid event id")
)

// ValidateStream reports whether s is a legal stream name: 1–255 bytes of
// UTF-8, no control characters, none of the glob characters *?[].
func ValidateStream(s string) error {
	if err := validateName(s, MaxStreamLen, "*?[]"); err != nil {
		return fmt.Errorf("%w %q: %s", ErrBadStream, clip(s), err)
	}
	return nil
}

// ValidateType reports whether t is a legal event type: 1–255 bytes of
// UTF-8 without control characters.
func ValidateType(t string) error {
	if err := validateName(t, MaxTypeLen, ""); err != nil {
		return fmt.Errorf("%w %q: %s", ErrBadType, clip(t), err)
	}
	return nil
}

// ValidateID reports whether id is a legal event id: 1–128 bytes of UTF-8
// without control characters.
func ValidateID(id string) error {
	if err := validateName(id, MaxIDLen, ""); err != nil {
		return fmt.Errorf("%w %q: %s", ErrBadID, clip(id), err)
	}
	return nil
}

func validateName(s string, max int, forbidden string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > max {
		return fmt.Errorf("%d bytes, the limit is %d", len(s), max)
	}
	// The common name is printable ASCII: one pass over the bytes (this
	// runs for every event of a bulk append).
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || forbidden != "" && strings.IndexByte(forbidden, c) >= 0 {
			ascii = false
			break
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return errors.New("contains a control character")
		}
		if forbidden != "" && strings.ContainsRune(forbidden, r) {
			return fmt.Errorf("contains %q", r)
		}
	}
	return nil
}

// clip keeps error messages one short line even for hostile input.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Category is the part of a stream name before its first '-'.
func Category(stream string) string {
	if i := strings.IndexByte(stream, '-'); i >= 0 {
		return stream[:i]
	}
	return stream
}
