package codec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CursorKind says how a cursor picks its place in the log.
type CursorKind int

const (
	CursorStart     CursorKind = iota // the first retained event
	CursorEnd                         // after the last event: only new ones
	CursorPosition                    // a global position
	CursorAfterHead                   // +N: N events after the start of the selection
	CursorBeforeEnd                   // -N: N events before the end of the selection
	CursorTime                        // the first event at or after a time
	CursorStored                      // a consumer group's committed position
)

// Cursor is a parsed CURSOR argument (see CLI.md, "Selections and
// cursors"). It is the one cursor parser of every command.
type Cursor struct {
	Kind CursorKind
	N    uint64    // the position, or N of +N / -N
	Time time.Time // for CursorTime
	text string
}

func (c Cursor) String() string { return c.text }

// ParseCursor reads start, end, now, N, +N, -N, stored, or @TIME where
// TIME is RFC 3339, a date (YYYY-MM-DD, UTC), unix seconds, or a negative
// duration ago (@-10m, @-2d, @-1h30m). now is the reference for the last.
func ParseCursor(s string, now time.Time) (Cursor, error) {
	c := Cursor{text: s}
	bad := func(why string) (Cursor, error) {
		return Cursor{}, fmt.Errorf("invalid cursor %q: %s (want start, end, a position, +N, -N, @TIME or stored)", clip(s), why)
	}
	switch {
	case s == "start":
		c.Kind = CursorStart
	case s == "end" || s == "now":
		c.Kind = CursorEnd
	case s == "stored":
		c.Kind = CursorStored
	case strings.HasPrefix(s, "@"):
		t, err := parseCursorTime(s[1:], now)
		if err != nil {
			return bad(err.Error())
		}
		c.Kind, c.Time = CursorTime, t
	case strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-"):
		n, err := strconv.ParseUint(s[1:], 10, 64)
		if err != nil {
			return bad("not a count")
		}
		c.Kind, c.N = CursorAfterHead, n
		if s[0] == '-' {
			c.Kind = CursorBeforeEnd
		}
	default:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return bad("not a cursor")
		}
		if n == 0 {
			return bad("positions start at 1")
		}
		c.Kind, c.N = CursorPosition, n
	}
	return c, nil
}

func parseCursorTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time")
	}
	if strings.HasPrefix(s, "-") {
		d, err := parseAgo(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("not RFC 3339, a date, unix seconds or -DURATION")
}

// parseAgo reads a duration with d (days) allowed besides Go's units.
func parseAgo(s string) (time.Duration, error) {
	var total time.Duration
	rest := s
	if i := strings.IndexByte(rest, 'd'); i > 0 {
		days, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		total = time.Duration(days) * 24 * time.Hour
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		total += d
	}
	return total, nil
}
