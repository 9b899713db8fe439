package codec

import (
	"testing"
	"time"
)

func TestParseCursor(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		kind CursorKind
		n    uint64
		time time.Time
	}{
		{"start", CursorStart, 0, time.Time{}},
		{"end", CursorEnd, 0, time.Time{}},
		{"now", CursorEnd, 0, time.Time{}},
		{"stored", CursorStored, 0, time.Time{}},
		{"1234", CursorPosition, 1234, time.Time{}},
		{"+5", CursorAfterHead, 5, time.Time{}},
		{"-10", CursorBeforeEnd, 10, time.Time{}},
		{"@2026-11-25T10:00:00Z", CursorTime, 0, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)},
		{"@2026-11-25T11:00:00+01:00", CursorTime, 0, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)},
		{"@2026-11-25", CursorTime, 0, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)},
		{"@1764064800", CursorTime, 0, time.Unix(1764064800, 0).UTC()},
		{"@-10m", CursorTime, 0, now.Add(-10 * time.Minute)},
		{"@-2d", CursorTime, 0, now.Add(-48 * time.Hour)},
		{"@-1d12h", CursorTime, 0, now.Add(-36 * time.Hour)},
		{"@-2w", CursorTime, 0, now.Add(-14 * 24 * time.Hour)},
		{"@-90s", CursorTime, 0, now.Add(-90 * time.Second)},
	}
	for _, c := range cases {
		got, err := ParseCursor(c.in, now)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got.Kind != c.kind || got.N != c.n || !got.Time.Equal(c.time) {
			t.Errorf("%s: got %+v", c.in, got)
		}
	}
	for _, bad := range []string{"", "0", "x", "+", "-x", "@", "@yesterday", "@-5", "@-d", "12abc"} {
		if _, err := ParseCursor(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSelection(t *testing.T) {
	all, _ := ParseSelection("")
	one, _ := ParseSelection("account-7")
	glob, _ := ParseSelection("account-*")
	slash, _ := ParseSelection("tenant/*")
	for _, c := range []struct {
		sel  Selection
		name string
		want bool
	}{
		{all, "x", true}, {one, "account-7", true}, {one, "account-70", false},
		{glob, "account-7", true}, {glob, "order-1", false}, {slash, "tenant/a/b", true},
	} {
		if got := c.sel.Match(c.name); got != c.want {
			t.Errorf("%s matches %s: %v", c.sel, c.name, got)
		}
	}
	if _, ok := one.Stream(); !ok {
		t.Error("a stream name is not a single stream")
	}
	for _, bad := range []string{"a[", "bad\x01name"} {
		if _, err := ParseSelection(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Times past what int64 nanoseconds hold (1677-09-21 .. 2262-04-11) are
// clamped to an edge no event's time reaches, so they neither wrap (the
// year 2300 once came out as 1715) nor select anything an exact time
// would not.
func TestParseCursorTimeEdges(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"@1970-01-01T00:00:00Z", time.Unix(0, 0).UTC()},
		{"@0", time.Unix(0, 0).UTC()},
		{"@2261-12-31T23:59:59.999999999Z", time.Date(2261, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"@2262-01-01", maxCursorTime},
		{"@2262-04-11T23:47:16.854775807Z", maxCursorTime}, // the last int64 nanosecond
		{"@2262-04-11T23:47:16.854775808Z", maxCursorTime},
		{"@2300-01-01", maxCursorTime},
		{"@9999-12-31", maxCursorTime},
		{"@9999-12-31T23:59:59.999999999+00:00", maxCursorTime},
		{"@9999-12-31T23:59:59-23:59", maxCursorTime},
		{"@9214646400", maxCursorTime},          // 2262-01-01 in unix seconds
		{"@9223372036854775807", maxCursorTime}, // time.Unix would overflow
		{"@99999999999999999999", maxCursorTime},
		{"@1677-09-21", minCursorTime},
		{"@1600-01-01", minCursorTime},
		{"@0000-01-01T00:00:00Z", minCursorTime},
		{"@0000-01-01T00:00:00+23:59", minCursorTime},
		{"@1678-01-01", minCursorTime},
		{"@1678-01-01T00:00:00.000000001Z", minCursorTime.Add(1)},
		{"@-106751d", now.Add(-106751 * Day)}, // 1734: within the range
		{"@-106751d23h47m16.854775807s", now.Add(-MaxDuration)},
	} {
		got, err := ParseCursor(c.in, now)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got.Kind != CursorTime || !got.Time.Equal(c.want) {
			t.Errorf("%s: time %v, want %v", c.in, got.Time, c.want)
		}
		// Every cursor time, and the nanosecond after it (replay --to),
		// survives the store's int64 nanoseconds.
		if ns := got.Time.Add(1).UnixNano(); !time.Unix(0, ns).Equal(got.Time.Add(1)) {
			t.Errorf("%s: %v does not fit int64 nanoseconds", c.in, got.Time)
		}
	}
	for in, want := range map[string]string{
		"@-106752d":    `invalid cursor "@-106752d": duration 106752d is too large (at most 106751d23h47m16s) (want start, end, a position, +N, -N, @TIME or stored)`,
		"@-213504d":    `invalid cursor "@-213504d": duration 213504d is too large (at most 106751d23h47m16s) (want start, end, a position, +N, -N, @TIME or stored)`,
		"@-5x":         `invalid cursor "@-5x": bad duration "5x" (want start, end, a position, +N, -N, @TIME or stored)`,
		"@10000-01-01": `invalid cursor "@10000-01-01": not RFC 3339, a date, unix seconds or -DURATION (want start, end, a position, +N, -N, @TIME or stored)`,
	} {
		if _, err := ParseCursor(in, now); err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %s", in, err, want)
		}
	}
}
