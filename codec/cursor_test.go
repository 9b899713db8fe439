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
