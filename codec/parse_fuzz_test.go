package codec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Fuzz targets for the parsers of what a user types: cursors and
// durations. A parser either refuses its input with its own error, in
// one line, or returns a value that reads back the same from the text it
// prints.

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"start", "end", "now", "stored", "1", "+5", "-5", "0", "+", "@",
		"@2025-01-02", "@2025-01-02T03:04:05.5Z", "@-10m", "@-1d12h", "@1700000000", "@+99999999999999999999",
		"@-99999999w", "+18446744073709551616", "@2300-01-01", "@1600-01-01T00:00:00Z"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s, now)
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "invalid cursor ") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q is not one line of evt's", msg)
			}
			return
		}
		if c.String() != s {
			t.Fatalf("cursor %q prints as %q", s, c.String())
		}
		again, err := ParseCursor(c.String(), now)
		if err != nil || again.Kind != c.Kind || again.N != c.N || !again.Time.Equal(c.Time) {
			t.Fatalf("cursor %q reads back as %+v, %v (was %+v)", s, again, err, c)
		}
		switch c.Kind {
		case CursorTime:
			if c.Time.Before(minCursorTime) || c.Time.After(maxCursorTime) {
				t.Fatalf("cursor %q names %v, outside the clamp", s, c.Time)
			}
		case CursorPosition:
			if c.N == 0 {
				t.Fatalf("cursor %q is position 0", s)
			}
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "0s", "90s", "1h30m", "1.5h", ".5s", "5.s", "2µs", "2μs", "7d", "1w2d3h",
		"106751d23h47m16.854775807s", "106751d23h47m16.854775808s", "9223372036854775808ns", "-1s", "+1s", "", "1", "1x", "1.2.3s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			var de *DurationError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DurationError", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q is %v, negative", s, d)
		}
		text := FormatDuration(d)
		if again, err := ParseDuration(text); err != nil || again != d {
			t.Fatalf("%q is %v, printed %q, which reads as %v, %v", s, d, text, again, err)
		}
		// Without days and weeks, Go's parser agrees.
		if !strings.ContainsAny(s, "dw") {
			if gd, gerr := time.ParseDuration(s); gerr == nil && gd != d {
				t.Fatalf("%q is %v; time.ParseDuration says %v", s, d, gd)
			}
		}
	})
}
