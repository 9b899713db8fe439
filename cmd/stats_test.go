package cmd

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var statsEpoch = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()

// TestRateBuckets checks the width chosen for a span, that buckets start
// at a multiple of it, and that no event is lost when fine buckets are
// merged.
func TestRateBuckets(t *testing.T) {
	tests := []struct {
		name      string
		offsets   []time.Duration // event times after statsEpoch, in order
		width     time.Duration
		start     time.Duration // of the first bucket, after statsEpoch
		buckets   int
		firstLast [2]uint64
	}{
		{"one event", []time.Duration{0}, time.Millisecond, 0, 1, [2]uint64{1, 1}},
		{"same millisecond", []time.Duration{1, 2, 3}, time.Millisecond, 0, 1, [2]uint64{3, 3}},
		{"an hour", []time.Duration{0, 30 * time.Second, time.Hour - 1}, time.Minute, 0, 60, [2]uint64{2, 1}},
		{"a second", []time.Duration{0, time.Second - 1}, 20 * time.Millisecond, 0, 50, [2]uint64{1, 1}},
		{"unaligned start", []time.Duration{7 * time.Second, 7*time.Second + 10*time.Minute}, 12 * time.Second, 0, 51, [2]uint64{1, 1}},
		{"a day", []time.Duration{time.Hour, 25 * time.Hour}, 30 * time.Minute, time.Hour, 49, [2]uint64{1, 1}},
		{"a year", []time.Duration{0, 365 * 24 * time.Hour}, 7 * 24 * time.Hour, -time.Duration(statsEpoch % int64(7*24*time.Hour)), 54, [2]uint64{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h rateHistogram
			for _, d := range tt.offsets {
				h.add(statsEpoch + int64(d))
			}
			if len(h.counts) > maxFineBuckets {
				t.Fatalf("%d fine buckets, the limit is %d", len(h.counts), maxFineBuckets)
			}
			b := h.buckets(maxRateBuckets)
			if b.width != int64(tt.width) {
				t.Errorf("width %v, want %v", time.Duration(b.width), tt.width)
			}
			if b.start%b.width != 0 {
				t.Errorf("start %d is not a multiple of the width", b.start)
			}
			if want := statsEpoch + int64(tt.start); b.start != want {
				t.Errorf("start %v, want %v", time.Unix(0, b.start).UTC(), time.Unix(0, want).UTC())
			}
			if len(b.counts) != tt.buckets {
				t.Errorf("%d buckets, want %d", len(b.counts), tt.buckets)
			}
			total := uint64(0)
			for _, c := range b.counts {
				total += c
			}
			if total != uint64(len(tt.offsets)) {
				t.Errorf("buckets hold %d events, want %d", total, len(tt.offsets))
			}
			if got := [2]uint64{b.counts[0], b.counts[len(b.counts)-1]}; got != tt.firstLast {
				t.Errorf("first and last bucket %v, want %v", got, tt.firstLast)
			}
		})
	}
}

// TestRateBucketsMany adds a million events over a week: memory stays
// bounded and the counts add up.
func TestRateBucketsMany(t *testing.T) {
	var h rateHistogram
	const n = 1_000_000
	step := int64(7*24*time.Hour) / n
	for i := range int64(n) {
		h.add(statsEpoch + i*step)
	}
	if len(h.counts) > maxFineBuckets {
		t.Fatalf("%d fine buckets", len(h.counts))
	}
	b := h.buckets(maxRateBuckets)
	if len(b.counts) > maxRateBuckets || len(b.counts) < 40 {
		t.Errorf("%d buckets of %v, want 40 to 60", len(b.counts), time.Duration(b.width))
	}
	total := uint64(0)
	for _, c := range b.counts {
		total += c
	}
	if total != n {
		t.Errorf("buckets hold %d events, want %d", total, n)
	}
}

func TestRenderRateChart(t *testing.T) {
	b := rateBuckets{start: statsEpoch, width: int64(time.Minute), counts: []uint64{16, 1, 0, 8, 12}}
	got := renderRateChart(b, 2, false, false)
	// The peak (16 events) is 2 rows, 16 eighths, high: 1 event rounds up
	// to one eighth, 8 are a row, 12 a row and a half.
	want := "events per 1m from 2026-11-25T10:00:00Z to 2026-11-25T10:05:00Z\n" +
		"16 │█   ▄\n" +
		"   │█▁ ██\n" +
		" 0 └─────\n" +
		"    10:00\n" // the start; the end (10:05) has no room beside it
	if got != want {
		t.Errorf("unicode chart:\n%s\nwant:\n%s", got, want)
	}
	got = renderRateChart(b, 2, true, false)
	want = "events per 1m from 2026-11-25T10:00:00Z to 2026-11-25T10:05:00Z\n" +
		"16 |#   :\n" +
		"   |#. ##\n" +
		" 0 +-----\n" +
		"    10:00\n"
	if got != want {
		t.Errorf("ascii chart:\n%s\nwant:\n%s", got, want)
	}
	got = renderRateChart(b, 2, false, true)
	if !strings.Contains(got, "\033[1mevents per 1m") || !strings.Contains(got, "│\033[36m█▁ ██\033[0m\n") {
		t.Errorf("coloured chart has no bold title or cyan bars:\n%q", got)
	}
	if got := renderRateChart(rateBuckets{}, 2, false, false); got != "no events\n" {
		t.Errorf("empty chart: %q", got)
	}
}

func TestLocaleIsUTF8(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"LANG": "C.UTF-8"}, true},
		{map[string]string{"LANG": "en_US.utf8"}, true},
		{map[string]string{"LANG": "C"}, false},
		{map[string]string{"LANG": "C", "LC_CTYPE": "de_DE.UTF-8"}, true},
		{map[string]string{"LANG": "C.UTF-8", "LC_ALL": "POSIX"}, false},
		{map[string]string{"LC_ALL": "en_GB.UTF-8", "LC_CTYPE": "C"}, true},
		{map[string]string{"LANG": "ja_JP.eucJP"}, false},
	}
	for _, tt := range tests {
		if got := localeIsUTF8(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.env, got, tt.want)
		}
	}
}

func TestFormatWidth(t *testing.T) {
	for ns, want := range map[time.Duration]string{
		time.Millisecond:       "1ms",
		250 * time.Millisecond: "250ms",
		90 * time.Second:       "90s",
		5 * time.Minute:        "5m",
		6 * time.Hour:          "6h",
		7 * 24 * time.Hour:     "7d",
	} {
		if got := formatWidth(int64(ns)); got != want {
			t.Errorf("formatWidth(%v) = %q, want %q", ns, got, want)
		}
	}
}

func TestTallyTop(t *testing.T) {
	var tl tally
	for _, name := range []string{"b", "a", "c", "b", "a", "d", "b"} {
		tl.add([]byte(name))
	}
	got := tl.top(3, "type")
	want := []nameCount{{"type", "b", 3}, {"type", "a", 2}, {"type", "c", 1}} // ties by name
	if len(got) != len(want) {
		t.Fatalf("top(3) = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("top(3)[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if all := tl.top(0, "type"); len(all) != 4 {
		t.Errorf("top(0) has %d names, want all 4", len(all))
	}
	b, err := got[0].MarshalJSON()
	if err != nil || string(b) != `{"type":"b","events":3}` {
		t.Errorf("MarshalJSON = %s, %v", b, err)
	}
}

// TestStatsChartGolden: the append rate chart on terminals of 40, 80 and
// 160 columns: wider with the terminal, times under its axis; and what
// stats says when every event has the same time.
func TestStatsChartGolden(t *testing.T) {
	dir := isolate(t)
	var b strings.Builder
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range 40 {
		at := start.Add(time.Duration(i*i) * 2 * time.Second) // ever slower
		fmt.Fprintf(&b, `{"stream":"s-%d","type":"T","id":"e-%d","time":%q,"data":{}}`+"\n", i%3, i, at.Format(time.RFC3339Nano))
	}
	writeFile(t, filepath.Join(dir, "events.ndjson"), b.String())
	if code, _, errOut := runEvt(t, "import", "events.ndjson"); code != 0 {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	t.Setenv("LANG", "C.UTF-8")
	var golden strings.Builder
	for _, w := range terminalWidths {
		out := runEvtWidth(t, w, "stats")
		chart := out[strings.Index(out, "events per "):]
		fmt.Fprintf(&golden, "# %d columns\n%s\n", w, chart)
	}
	checkGolden(t, "stats-chart.txt", golden.String())

	// Every event at one instant: nothing to chart, and it says so.
	b.Reset()
	for i := range 5 {
		fmt.Fprintf(&b, `{"stream":"s","type":"T","id":"x-%d","time":"2026-11-25T10:00:00Z","data":{}}`+"\n", i)
	}
	writeFile(t, filepath.Join(dir, "same.ndjson"), b.String())
	if code, _, errOut := runEvt(t, "--dir", "same", "import", "same.ndjson"); code != 0 {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	out := runEvtWidth(t, 80, "--dir", "same", "stats")
	if want := "\nall 5 events were appended at 2026-11-25T10:00:00.000000000Z: no rate to chart\n"; !strings.HasSuffix(out, want) {
		t.Errorf("one instant: got\n%s\nwant it to end with %q", out, want)
	}
}
