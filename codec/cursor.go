package codec

import (
	"errors"
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
// TIME is RFC 3339, a date (YYYY-MM-DD, UTC), unix seconds, or a duration
// ago (@-10m, @-2d, @-1h30m, @-2w; ParseDuration reads it). now is the
// reference for the last. A time outside 1678..2262 is clamped (see
// minCursorTime).
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
		if errors.Is(err, strconv.ErrRange) {
			return bad("the count is too large (at most 18446744073709551615)")
		} else if err != nil {
			return bad("not a count")
		}
		c.Kind, c.N = CursorAfterHead, n
		if s[0] == '-' {
			c.Kind = CursorBeforeEnd
		}
	default:
		n, err := strconv.ParseUint(s, 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return bad("the position is too large (at most 18446744073709551615)")
		} else if err != nil {
			return bad("not a cursor")
		}
		if n == 0 {
			return bad("positions start at 1")
		}
		c.Kind, c.N = CursorPosition, n
	}
	return c, nil
}

// The times a cursor can name. An event's time is an int64 of
// nanoseconds since 1970, so time.Time.UnixNano wraps outside 1677..2262
// (@2300-01-01 would come out as 1715 and select everything). A cursor
// time is clamped to this range instead: no event's time lies outside it
// (appends take the clock, import refuses times outside 1970..2261), so
// "the first event at or after" a clamped time is the one the real time
// names. The edges leave room for the nanosecond replay --to and fold
// --at add to make their bound inclusive.
var (
	minCursorTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	maxCursorTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

func clampCursorTime(t time.Time) time.Time {
	switch {
	case t.Before(minCursorTime):
		return minCursorTime
	case t.After(maxCursorTime):
		return maxCursorTime
	}
	return t.UTC()
}

func parseCursorTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time")
	}
	if strings.HasPrefix(s, "-") {
		d, err := ParseDuration(s[1:])
		var de *DurationError
		if errors.As(err, &de) && de.TooLarge {
			return time.Time{}, fmt.Errorf("duration %s is too large (at most %s)", printable(s[1:]), FormatDuration(MaxDuration.Truncate(time.Second)))
		} else if err != nil {
			return time.Time{}, fmt.Errorf("bad duration %q", clip(s[1:]))
		}
		return clampCursorTime(now.Add(-d)), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return clampCursorTime(t), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return clampCursorTime(t), nil
	}
	if n, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// Clamped before time.Unix, whose seconds would overflow too.
		if err != nil || n > uint64(maxCursorTime.Unix()) {
			return maxCursorTime, nil
		}
		return clampCursorTime(time.Unix(int64(n), 0)), nil
	}
	return time.Time{}, fmt.Errorf("not RFC 3339, a date, unix seconds or -DURATION")
}
