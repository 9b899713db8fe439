package cmd

import (
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// progress draws how far a long piece of work has got on one line of
// stderr: a bar that fits the terminal's width, the percentage, how much
// of how much is done, the rate and the time left:
//
//	verify [=========>          ]  48%  1.2 GiB/2.5 GiB  310.0 MiB/s  4s left
//
// It is evt's only progress bar. It draws only when stderr is a terminal;
// a bar made with besideOutput also stays away when stdout is that same
// terminal, because the command prints there while it works (export's
// events would be overwritten). A line is redrawn at most ten times a
// second, is erased with spaces (no escape sequences, so TERM=dumb is
// fine), and is never wider than the terminal, so a narrow window gets
// no trail of wrapped lines. It is safe for use by several goroutines.
type progress struct {
	ios   *IOStreams
	label string
	noun  string // what is counted ("events"); "" counts bytes
	quiet bool   // never draw

	mu       sync.Mutex // guards the fields below and the drawing
	start    time.Time
	drawn    time.Time
	width    int // of the line on the terminal now, 0 if none
	barWidth int // 0 until the first line is laid out; -1: no bar
	now      func() time.Time
}

// newProgress returns a bar for work measured in bytes.
func newProgress(ios *IOStreams, label string) *progress {
	return &progress{ios: ios, label: label, now: time.Now}
}

// newCountProgress returns a bar for work measured in things (noun:
// "events").
func newCountProgress(ios *IOStreams, label, noun string) *progress {
	return &progress{ios: ios, label: label, noun: noun, now: time.Now}
}

// besideOutput keeps the bar off when stdout is the terminal the bar
// would be drawn on: for commands that print on stdout while they work.
func (p *progress) besideOutput() *progress {
	p.quiet = p.quiet || p.ios.IsStdoutTTY() && p.ios.SameTerminal()
	return p
}

// update reports done of total; total 0 means it is not known (the bar
// then shows what is done and the rate).
func (p *progress) update(done, total int64) {
	if p.quiet || !p.ios.IsStderrTTY() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	final := total > 0 && done >= total
	if !final && now.Sub(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = now
	line := p.line(done, total, now.Sub(p.start), p.ios.StderrWidth()-1)
	w := utf8.RuneCountInString(line)
	pad := max(0, p.width-w)
	fmt.Fprint(p.ios.ErrOut, "\r"+line+strings.Repeat(" ", pad))
	p.width = w
}

// done erases the bar, so what the command prints next starts on a
// clean line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		fmt.Fprint(p.ios.ErrOut, "\r"+strings.Repeat(" ", p.width)+"\r")
		p.width = 0
	}
	p.start, p.drawn = time.Time{}, time.Time{}
}

// line lays out one line of at most width columns. The bar keeps one
// width from frame to frame (set by the widest text the work can show);
// when the line would not fit, the bar goes first, then the rate, then
// the counts' noun, the counts, and the time left.
func (p *progress) line(done, total int64, elapsed time.Duration, width int) string {
	var pct, counts, rate, left string
	if total > 0 {
		done = min(done, total)
		pct = fmt.Sprintf("%3d%%", done*100/total)
		counts = p.amount(done) + "/" + p.amount(total)
	} else {
		counts = p.amount(done)
	}
	bare := counts
	if p.noun != "" {
		counts += " " + p.noun
	}
	if secs := elapsed.Seconds(); secs >= 0.2 && done > 0 {
		perSec := float64(done) / secs
		rate = p.amount(int64(perSec)) + "/s"
		if total > 0 && done < total {
			left = shortDuration(time.Duration(float64(total-done)/perSec*float64(time.Second))) + " left"
		}
	}
	head := p.label
	if pct != "" {
		if p.barWidth == 0 {
			widest := len(p.amount(total)+"/"+p.amount(total)+" "+p.noun) + len("  999.9 MiB/s  99m59s left")
			p.barWidth = min(40, width-utf8.RuneCountInString(p.label)-len(" [] 100%")-widest)
			if p.barWidth < 10 {
				p.barWidth = -1 // no room for a bar
			}
		}
		if p.barWidth > 0 {
			head += " [" + drawBar(done, total, p.barWidth) + "]"
		}
		head += " " + pct
	}
	for _, parts := range [][]string{{counts, rate, left}, {counts, left}, {bare, left}, {left}, {}} {
		line := head
		for _, part := range parts {
			if part != "" {
				line += "  " + part
			}
		}
		if utf8.RuneCountInString(line) <= width {
			return line
		}
	}
	return clipRunes(head, width)
}

// amount prints n bytes, or n things.
func (p *progress) amount(n int64) string {
	if p.noun == "" {
		return humanBytes(n)
	}
	return humanCount(n)
}

func drawBar(done, total int64, width int) string {
	n := int(done * int64(width) / total)
	if n >= width {
		return strings.Repeat("=", width)
	}
	if n == 0 {
		return strings.Repeat(" ", width)
	}
	return strings.Repeat("=", n-1) + ">" + strings.Repeat(" ", width-n)
}

// clipRunes cuts s to at most n runes.
func clipRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// humanCount prints a count in at most four digits and a suffix: 999,
// 12.3k, 4.56M.
func humanCount(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprint(n)
	case n < 10_000:
		return fmt.Sprintf("%.2fk", float64(n)/1e3)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	case n < 10_000_000:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n < 1_000_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2fG", float64(n)/1e9)
}

// shortDuration prints d to the second, in at most two units: 4s, 1m05s,
// 2h10m.
func shortDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 100*3600:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}
