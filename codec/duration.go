package codec

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Day and Week are the two units evt's durations add to Go's: a day is
// 24 hours and a week 7 days, whatever the calendar says (retention and
// cursors measure elapsed time, not wall-clock dates).
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
)

// MaxDuration is the longest duration a time.Duration holds (about 292
// years); ParseDuration refuses longer ones rather than wrap around.
const MaxDuration = time.Duration(math.MaxInt64)

// durationUnits are the units ParseDuration reads: Go's, plus d and w.
var durationUnits = map[string]uint64{
	"ns": uint64(time.Nanosecond),
	"us": uint64(time.Microsecond),
	"µs": uint64(time.Microsecond), // U+00B5, as time.ParseDuration
	"μs": uint64(time.Microsecond), // U+03BC
	"ms": uint64(time.Millisecond),
	"s":  uint64(time.Second),
	"m":  uint64(time.Minute),
	"h":  uint64(time.Hour),
	"d":  uint64(Day),
	"w":  uint64(Week),
}

// DurationError says why a text is not a duration evt accepts. Its
// message speaks of a value, as flag errors do ("--timeout: invalid value
// ..."); a cursor says it its own way from the fields.
type DurationError struct {
	Text     string
	Negative bool // it had a minus sign: no evt duration is negative
	TooLarge bool // more than MaxDuration
}

func (e *DurationError) Error() string {
	switch {
	case e.TooLarge:
		return printable(e.Text) + " is too large (at most " + FormatDuration(MaxDuration.Truncate(time.Second)) + ")"
	case e.Negative:
		return "invalid value " + strconv.Quote(clip(e.Text)) + ": want a duration of 0 or more"
	}
	return "invalid value " + strconv.Quote(clip(e.Text)) + ": want a duration such as 90s, 10m, 1h30m or 7d"
}

// printable is s as written when it is one line of printable text, and
// quoted otherwise: an error message stays one line whatever was typed.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(clip(s))
	}
	return clip(s)
}

// ParseDuration reads the durations of every flag and @-DURATION cursor
// (CLI.md, "Everywhere"): one or more numbers, each with a unit, summed:
// 90s, 1.5h, 1h30m, 7d, 1d12h, 2w. The units are Go's (ns, us, µs, ms, s,
// m, h) plus d (24h) and w (7d); "0" needs none. A sign is refused (no
// duration evt takes is negative), and so is anything longer than
// MaxDuration, which time.ParseDuration would report as "invalid" and a
// multiplication by 24h would silently wrap.
func ParseDuration(s string) (time.Duration, error) {
	bad := &DurationError{Text: s}
	if s == "0" {
		return 0, nil
	}
	if strings.HasPrefix(s, "-") {
		bad.Negative = true
		return 0, bad
	}
	if s == "" {
		return 0, bad
	}
	const limit = uint64(MaxDuration)
	var total uint64
	rest := s
	for rest != "" {
		// A number: digits, optionally a fraction, at least one digit.
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		whole, frac := rest[:i], ""
		if i < len(rest) && rest[i] == '.' {
			j := i + 1
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			frac, i = rest[i+1:j], j
		}
		if whole == "" && frac == "" {
			return 0, bad
		}
		// The unit: everything up to the next digit or dot.
		j := i
		for j < len(rest) && rest[j] != '.' && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		unit, ok := durationUnits[rest[i:j]]
		if !ok {
			return 0, bad
		}
		rest = rest[j:]

		var n uint64
		for _, c := range []byte(whole) {
			if n > (limit-uint64(c-'0'))/10 {
				bad.TooLarge = true
				return 0, bad
			}
			n = n*10 + uint64(c-'0')
		}
		if n > limit/unit {
			bad.TooLarge = true
			return 0, bad
		}
		n *= unit
		// The fraction adds less than one unit; digits past the
		// nanosecond no longer matter (as in time.ParseDuration).
		if frac != "" {
			f, scale := uint64(0), 1.0
			for _, c := range []byte(frac) {
				if f > (math.MaxUint64/10)-1 {
					break
				}
				f, scale = f*10+uint64(c-'0'), scale*10
			}
			n += uint64(float64(f) * (float64(unit) / scale))
		}
		if n > limit-total {
			bad.TooLarge = true
			return 0, bad
		}
		total += n
	}
	return time.Duration(total), nil
}

// FormatDuration prints d the way ParseDuration reads it, shortest first:
// whole days as d, then Go's form of the rest without its zero tail
// (7d, 1d12h, 1h30m, 90s, 1.5s); zero is 0s.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return d.String()
	}
	var out string
	if days := d / Day; days > 0 {
		out = strconv.FormatInt(int64(days), 10) + "d"
		d -= days * Day
		if d == 0 {
			return out
		}
	}
	rest := d.String() // 12h0m0s, 1h30m0s, 10m0s, 1.5s, 500ms
	if strings.HasSuffix(rest, "m0s") {
		rest = strings.TrimSuffix(rest, "0s")
	}
	if strings.HasSuffix(rest, "h0m") {
		rest = strings.TrimSuffix(rest, "0m")
	}
	return out + rest
}
