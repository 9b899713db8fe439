package codec

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	const maxText = "106751d23h47m16s" // MaxDuration in whole seconds
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string // "" accepted; else the error's message
	}{
		// Go's units, as time.ParseDuration reads them.
		{"0", 0, ""},
		{"0s", 0, ""},
		{"90s", 90 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1.5h", 90 * time.Minute, ""},
		{".5s", 500 * time.Millisecond, ""},
		{"5.s", 5 * time.Second, ""},
		{"300ms", 300 * time.Millisecond, ""},
		{"2us", 2 * time.Microsecond, ""},
		{"2µs", 2 * time.Microsecond, ""},
		{"2μs", 2 * time.Microsecond, ""},
		{"7ns", 7, ""},
		{"1h1h", 2 * time.Hour, ""}, // a sum, as Go's
		// Days and weeks, alone and combined.
		{"7d", 7 * Day, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"2w", 14 * Day, ""},
		{"1w2d3h", 9*Day + 3*time.Hour, ""},
		{"1.5d", 36 * time.Hour, ""},
		{"0d", 0, ""},
		// The edge of what time.Duration holds.
		{"106751d", 106751 * Day, ""},
		{"106751d23h47m16.854775807s", MaxDuration, ""},
		{"9223372036854775807ns", MaxDuration, ""},
		{"106751d23h47m16.854775808s", 0, "106751d23h47m16.854775808s is too large (at most " + maxText + ")"},
		{"9223372036854775808ns", 0, "9223372036854775808ns is too large (at most " + maxText + ")"},
		{"106752d", 0, "106752d is too large (at most " + maxText + ")"},
		{"213503d", 0, "213503d is too large (at most " + maxText + ")"},
		{"213504d", 0, "213504d is too large (at most " + maxText + ")"}, // wrapped to 25m26s once
		{"15251w", 0, "15251w is too large (at most " + maxText + ")"},
		{"106751d24h", 0, "106751d24h is too large (at most " + maxText + ")"},
		{"99999999999999999999h", 0, "99999999999999999999h is too large (at most " + maxText + ")"},
		{"2562048h", 0, "2562048h is too large (at most " + maxText + ")"},
		// Not durations.
		{"", 0, `invalid value "": want a duration such as 90s, 10m, 1h30m or 7d`},
		{"soon", 0, `invalid value "soon": want a duration such as 90s, 10m, 1h30m or 7d`},
		{"10", 0, `invalid value "10": want a duration such as 90s, 10m, 1h30m or 7d`},
		{"1x", 0, `invalid value "1x": want a duration such as 90s, 10m, 1h30m or 7d`},
		{"d", 0, `invalid value "d": want a duration such as 90s, 10m, 1h30m or 7d`},
		{"1D", 0, `invalid value "1D": want a duration such as 90s, 10m, 1h30m or 7d`},
		{"1d 2h", 0, `invalid value "1d 2h": want a duration such as 90s, 10m, 1h30m or 7d`},
		{".s", 0, `invalid value ".s": want a duration such as 90s, 10m, 1h30m or 7d`},
		{"+5m", 0, `invalid value "+5m": want a duration such as 90s, 10m, 1h30m or 7d`},
		{"-5m", 0, `invalid value "-5m": want a duration of 0 or more`},
		{"-0", 0, `invalid value "-0": want a duration of 0 or more`},
	} {
		got, err := ParseDuration(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.err == "" && got != c.want:
			t.Errorf("%q = %v, want %v", c.in, got, c.want)
		case c.err != "" && err == nil:
			t.Errorf("%q = %v, want error %q", c.in, got, c.err)
		case c.err != "" && err.Error() != c.err:
			t.Errorf("%q: error %q, want %q", c.in, err, c.err)
		}
		var de *DurationError
		if err != nil && !errors.As(err, &de) {
			t.Errorf("%q: error %T, want *DurationError", c.in, err)
		}
	}
}

// What time.ParseDuration accepts without a sign, ParseDuration reads the
// same, so Go's units keep their meaning.
func TestParseDurationAgreesWithGo(t *testing.T) {
	for _, s := range []string{"1ns", "1.000000001s", "0.1s", "1.0000000001s", "3h25m45.123456789s",
		"2562047h47m16.854775807s", "1.23456789012345678901234567890h", "0.3333333333333333333h", "00000000000000000000001s"} {
		want, werr := time.ParseDuration(s)
		got, err := ParseDuration(s)
		if werr != nil || err != nil || got != want {
			t.Errorf("%q: evt %v (%v), Go %v (%v)", s, got, err, want, werr)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {500 * time.Millisecond, "500ms"}, {1500 * time.Millisecond, "1.5s"},
		{90 * time.Second, "1m30s"}, {10 * time.Minute, "10m"}, {90 * time.Minute, "1h30m"},
		{12 * time.Hour, "12h"}, {Day, "1d"}, {36 * time.Hour, "1d12h"}, {14 * Day, "14d"},
		{Day + time.Second, "1d1s"}, {Day + time.Hour + time.Second, "1d1h0m1s"},
		{MaxDuration, "106751d23h47m16.854775807s"}, {time.Duration(math.MaxInt64).Truncate(time.Second), "106751d23h47m16s"},
	} {
		got := FormatDuration(c.d)
		if got != c.want {
			t.Errorf("FormatDuration(%d) = %q, want %q", c.d, got, c.want)
		}
		back, err := ParseDuration(got)
		if err != nil || back != c.d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back, err, c.d)
		}
	}
}
