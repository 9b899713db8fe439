package cmd

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/evtdev/evt/codec"
)

// The append rate of evt stats: events counted per time bucket while the
// log is read, in bounded memory, then drawn as a bar chart.

const (
	// maxRateBuckets is the most buckets the rate has: a chart of 60
	// columns fits an 80-column terminal with its axis.
	maxRateBuckets = 60
	// rateChartHeight is the chart's height in rows; each row has eight
	// levels in Unicode block characters.
	rateChartHeight = 6
	// maxChartBuckets bounds the chart's columns on a wide terminal.
	maxChartBuckets = 240
	// maxFineBuckets bounds rateHistogram's memory (32 KiB of counts).
	maxFineBuckets = 4096
)

const day = int64(24 * time.Hour)

// fineWidths are the widths rateHistogram counts in, each a multiple of
// the one before, so coarsening never splits a bucket.
var fineWidths = []int64{
	int64(time.Millisecond), int64(10 * time.Millisecond), int64(100 * time.Millisecond),
	int64(time.Second), int64(10 * time.Second), int64(time.Minute), int64(10 * time.Minute),
	int64(time.Hour), day,
}

// roundWidths are the bucket widths a chart may have, narrowest first:
// steps of at most 1.5× or so, so the chosen width gives 40 to 60 buckets.
var roundWidths = func() []int64 {
	secs := []int64{1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 40, 45}
	var ws []int64
	for _, u := range []struct {
		unit  int64
		steps []int64
	}{
		{int64(time.Millisecond), []int64{1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 600, 800}},
		{int64(time.Second), secs},
		{int64(time.Minute), secs},
		{int64(time.Hour), []int64{1, 2, 3, 4, 6, 8, 12, 16}},
		{day, []int64{1, 2, 3, 4, 5, 6, 7, 10, 14, 21, 28, 30, 45, 60, 90, 120, 180, 365}},
	} {
		for _, s := range u.steps {
			ws = append(ws, s*u.unit)
		}
	}
	return ws
}()

// rateHistogram counts events per fine time bucket. Times never decrease
// along the log, so it keeps buckets from the first event's on, and when
// they would pass maxFineBuckets it merges them into the next wider fine
// width. Buckets are aligned to multiples of their width since the epoch.
type rateHistogram struct {
	width  int64    // nanoseconds per bucket; 0 before the first event
	origin int64    // counts[0] is the bucket origin*width ... (origin+1)*width
	counts []uint64 // the first and last are never 0
}

func (h *rateHistogram) add(t int64) {
	if h.width == 0 {
		h.width = fineWidths[0]
		h.origin = floorDiv(t, h.width)
	}
	i := floorDiv(t, h.width) - h.origin
	for i >= maxFineBuckets {
		h.coarsen()
		i = floorDiv(t, h.width) - h.origin
	}
	i = max(i, 0) // an older time than the first cannot come from the log; count it first
	for int64(len(h.counts)) <= i {
		h.counts = append(h.counts, 0)
	}
	h.counts[i]++
}

// coarsen merges the buckets into the next wider fine width.
func (h *rateHistogram) coarsen() {
	next := h.width * 10 // past a day: not round, but a multiple
	for _, w := range fineWidths {
		if w > h.width {
			next = w
			break
		}
	}
	h.counts, h.origin = regroup(h.counts, h.origin, h.width, next)
	h.width = next
}

// regroup re-counts buckets of width from (starting at bucket origin)
// into buckets of width to, a multiple of from.
func regroup(counts []uint64, origin, from, to int64) ([]uint64, int64) {
	factor := to / from
	newOrigin := floorDiv(origin, factor)
	last := floorDiv(origin+int64(len(counts))-1, factor)
	out := make([]uint64, last-newOrigin+1)
	for i, c := range counts {
		out[floorDiv(origin+int64(i), factor)-newOrigin] += c
	}
	return out, newOrigin
}

// rateBuckets is the append rate as printed: counts[i] events were
// appended from start+i*width (inclusive) to start+(i+1)*width, in
// nanoseconds since the epoch.
type rateBuckets struct {
	start, width int64
	counts       []uint64
}

// buckets re-counts the histogram into at most n buckets of the
// narrowest round width (1s, 5m, 1h...) that a fine bucket fits in.
func (h *rateHistogram) buckets(n int) rateBuckets {
	if len(h.counts) == 0 {
		return rateBuckets{}
	}
	first, last := h.origin*h.width, (h.origin+int64(len(h.counts))-1)*h.width
	fits := func(w int64) bool { return floorDiv(last, w)-floorDiv(first, w) < int64(n) }
	width := int64(0)
	for _, w := range roundWidths {
		if w >= h.width && w%h.width == 0 && fits(w) {
			width = w
			break
		}
	}
	if width == 0 { // a span of decades: any multiple of the fine width
		width = h.width * int64((len(h.counts)+n-1)/n)
		for !fits(width) {
			width += h.width
		}
	}
	counts, origin := regroup(h.counts, h.origin, h.width, width)
	return rateBuckets{start: origin * width, width: width, counts: counts}
}

func (b rateBuckets) seconds() float64 { return float64(b.width) / float64(time.Second) }

// rateDocument is the rate in -o json.
type rateDocument struct {
	Start         *string  `json:"start"` // null when there are no events
	BucketSeconds float64  `json:"bucket_seconds"`
	Events        []uint64 `json:"events"`
}

func (b rateBuckets) document() rateDocument {
	d := rateDocument{BucketSeconds: b.seconds(), Events: b.counts}
	if d.Events == nil {
		d.Events = []uint64{}
	} else {
		start := time.Unix(0, b.start).UTC().Format(codec.TimeFormat)
		d.Start = &start
	}
	return d
}

// Bar characters by eighths of a row: Unicode blocks, and an ASCII ramp
// for terminals that cannot show them.
var (
	unicodeBars = []string{" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"}
	asciiBars   = []string{" ", ".", ".", ":", ":", "|", "|", "#", "#"}
)

// renderRateChart draws b as a bar chart of height rows, one column per
// bucket, under a title naming the bucket width and the time span. The
// peak is labelled on the axis. Every bucket with an event shows at least
// the lowest level, so a quiet stretch with some events is not mistaken
// for none. color makes the title bold and the bars cyan.
func renderRateChart(b rateBuckets, height int, ascii, color bool) string {
	if len(b.counts) == 0 {
		return "no events\n"
	}
	bars, vline, corner, hline := unicodeBars, "│", "└", "─"
	if ascii {
		bars, vline, corner, hline = asciiBars, "|", "+", "-"
	}
	peak := uint64(0)
	for _, c := range b.counts {
		peak = max(peak, c)
	}
	end := b.start + int64(len(b.counts))*b.width
	var sb strings.Builder
	title := fmt.Sprintf("events per %s from %s to %s", formatWidth(b.width),
		time.Unix(0, b.start).UTC().Format(time.RFC3339Nano), time.Unix(0, end).UTC().Format(time.RFC3339Nano))
	if color {
		title = "\033[1m" + title + "\033[0m"
	}
	sb.WriteString(title + "\n")

	// Each column's height in eighths of a row, rounded up.
	levels := make([]uint64, len(b.counts))
	total := uint64(height * 8)
	for i, c := range b.counts {
		levels[i] = (c*total + peak - 1) / peak
	}
	label := strconv.FormatUint(peak, 10)
	for row := height - 1; row >= 0; row-- {
		var line strings.Builder
		for _, l := range levels {
			cell := min(max(int(l)-row*8, 0), 8)
			line.WriteString(bars[cell])
		}
		text := strings.TrimRight(line.String(), " ")
		if color && text != "" {
			text = "\033[36m" + text + "\033[0m"
		}
		axis := strings.Repeat(" ", len(label))
		if row == height-1 {
			axis = label
		}
		sb.WriteString(strings.TrimRight(axis+" "+vline+text, " ") + "\n")
	}
	sb.WriteString(fmt.Sprintf("%*s %s%s\n", len(label), "0", corner, strings.Repeat(hline, len(b.counts))))
	sb.WriteString(strings.TrimRight(strings.Repeat(" ", len(label)+2)+timeAxis(b), " ") + "\n")
	return sb.String()
}

// timeAxis labels the time axis under the chart: the start under the
// first column, the end ending under the last, and the middle between
// when there is room, in the shortest form the span allows (15:04 within
// a day, 01-02 15:04 within a year, dates beyond).
func timeAxis(b rateBuckets) string {
	n := len(b.counts)
	end := b.start + int64(n)*b.width
	layout := axisLayout(b.start, end, b.width)
	at := func(t int64) string { return time.Unix(0, t).UTC().Format(layout) }
	line := []rune(strings.Repeat(" ", n))
	put := func(col int, text string) bool {
		r := []rune(text)
		if col < 0 || col+len(r) > n {
			return false
		}
		for i := max(0, col-2); i < min(n, col+len(r)+2); i++ {
			if line[i] != ' ' {
				return false // too close to a label already placed
			}
		}
		copy(line[col:], r)
		return true
	}
	first, last := at(b.start), at(end)
	if !put(0, first) {
		return first // narrower than its label: the label alone
	}
	put(n-len([]rune(last)), last)
	put(n/2, at(b.start+int64(n/2)*b.width))
	return string(line)
}

// axisLayout is the time layout for labels of a span from start to end
// (nanoseconds) in buckets of width.
func axisLayout(start, end, width int64) string {
	s, e := time.Unix(0, start).UTC(), time.Unix(0, end-1).UTC()
	sameDay := s.YearDay() == e.YearDay() && s.Year() == e.Year()
	switch {
	case sameDay && width < int64(time.Second):
		return "15:04:05.000"
	case sameDay && width < int64(time.Minute):
		return "15:04:05"
	case sameDay:
		return "15:04"
	case width >= day && s.Year() == e.Year():
		return "01-02"
	case width >= day:
		return "2006-01-02"
	case s.Year() == e.Year():
		return "01-02 15:04"
	}
	return "2006-01-02 15:04"
}

// formatWidth writes a bucket width in its largest whole unit: 250ms,
// 15s, 5m, 6h, 7d.
func formatWidth(ns int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{day, "d"}, {int64(time.Hour), "h"}, {int64(time.Minute), "m"}, {int64(time.Second), "s"}, {int64(time.Millisecond), "ms"}} {
		if ns%u.size == 0 {
			return strconv.FormatInt(ns/u.size, 10) + u.name
		}
	}
	return time.Duration(ns).String()
}

// localeIsUTF8 reports whether the locale's character set is UTF-8: the
// first of LC_ALL, LC_CTYPE and LANG that is set decides, as in POSIX,
// and with none set the locale is "C", which is ASCII.
func localeIsUTF8(getenv func(string) string) bool {
	for _, name := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := getenv(name); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}

// floorDiv is a/b rounded down (Go's / rounds toward zero), so that times
// before the epoch fall into the right bucket too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
