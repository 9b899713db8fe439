package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// frames splits what a bar wrote to stderr into the lines a terminal
// showed, one per redraw, each ended by "|" so trailing spaces show.
func frames(t *testing.T, raw string, width int) string {
	t.Helper()
	var b strings.Builder
	for _, f := range strings.Split(raw, "\r")[1:] {
		if n := utf8.RuneCountInString(f); n >= width {
			t.Errorf("a line of %d columns on a terminal of %d wraps: %q", n, width, f)
		}
		b.WriteString(f + "|\n")
	}
	return b.String()
}

// drive runs a bar over a fake clock: four updates a second apart, the
// last one complete, then done.
func drive(p *progress, total int64) {
	clock := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return clock }
	for i := int64(0); i <= 4; i++ {
		p.update(total*i/4, total)
		clock = clock.Add(time.Second)
	}
	p.done()
}

func TestProgressGolden(t *testing.T) {
	for _, w := range terminalWidths {
		var out strings.Builder
		for _, bar := range []struct {
			label, noun string
			total       int64
		}{
			{"verify", "", 3 << 30},
			{"export", "events", 1_234_567},
			{"import: reading", "", 0},
		} {
			ios, _, _, errOut := newTestIOStreams()
			ios.SetStderrTTY(true)
			ios.SetTerminalWidth(w)
			p := newProgress(ios, bar.label)
			if bar.noun != "" {
				p = newCountProgress(ios, bar.label, bar.noun)
			}
			if bar.total == 0 {
				clock := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
				p.now = func() time.Time { return clock }
				for i := int64(1); i <= 3; i++ {
					clock = clock.Add(time.Second)
					p.update(i*40<<20, 0)
				}
				p.done()
			} else {
				drive(p, bar.total)
			}
			fmt.Fprintf(&out, "# %s\n%s", bar.label, frames(t, errOut.String(), w))
		}
		checkGolden(t, fmt.Sprintf("progress-%d.txt", w), out.String())
	}
}

// TestProgressWhere: a bar is drawn only on a terminal, and one beside
// the command's output not when stdout is that same terminal.
func TestProgressWhere(t *testing.T) {
	for _, tt := range []struct {
		name                          string
		stderrTTY, stdoutTTY, sameTTY bool
		beside                        bool
		drawn                         bool
	}{
		{"stderr a terminal", true, false, false, false, true},
		{"stderr piped", false, false, false, false, false},
		{"beside output piped", true, false, false, true, true},
		{"beside output on another terminal", true, true, false, true, true},
		{"beside output on the same terminal", true, true, true, true, false},
		{"after output on the same terminal", true, true, true, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _, errOut := newTestIOStreams()
			ios.SetStderrTTY(tt.stderrTTY)
			ios.SetStdoutTTY(tt.stdoutTTY)
			ios.SetSameTerminal(tt.sameTTY)
			p := newCountProgress(ios, "export", "events")
			if tt.beside {
				p = p.besideOutput()
			}
			drive(p, 100)
			if drawn := errOut.Len() > 0; drawn != tt.drawn {
				t.Errorf("drawn = %v, want %v: %q", drawn, tt.drawn, errOut.String())
			}
		})
	}
}

func TestHumanCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1234: "1.23k", 65536: "65.5k", 1_234_567: "1.23M", 45_000_000: "45.0M", 3e9: "3.00G"} {
		if got := humanCount(n); got != want {
			t.Errorf("humanCount(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{4 * time.Second: "4s", 65 * time.Second: "1m05s", 2*time.Hour + 10*time.Minute: "2h10m", 200 * time.Hour: "8d08h"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// runEvtStderrTTY runs evt with stderr a fake terminal of 80 columns.
func runEvtStderrTTY(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	ios, _, out, errOut := newTestIOStreams()
	ios.SetStderrTTY(true)
	ios.SetTerminalWidth(80)
	if code := run(context.Background(), ios, args); code != 0 {
		t.Fatalf("evt %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out.String(), errOut.String()
}

// TestProgressCommands: verify, repair and import draw the one bar on a
// terminal and erase it. (export, stats and compact move it every 65536
// events or per segment: a store this small is done before; whether
// export's bar stays off beside its output is TestProgressWhere's.)
func TestProgressCommands(t *testing.T) {
	dir := isolate(t)
	seedStore(t)
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"verify"}, {"repair"}} {
		_, errOut := runEvtStderrTTY(t, args...)
		if !strings.Contains(errOut, "\r"+args[0]+" [") || !strings.HasSuffix(strings.Split(errOut, "\n")[0], "\r") {
			t.Errorf("evt %s: no bar drawn and erased on stderr: %q", args[0], errOut)
		}
	}
	code, exported, _ := runEvt(t, "export")
	if code != 0 {
		t.Fatal("export failed")
	}
	writeFile(t, filepath.Join(dir, "x.ndjson"), exported)
	if _, errOut := runEvtStderrTTY(t, "--dir", "other", "import", "x.ndjson"); !strings.Contains(errOut, "\rimport [") {
		t.Errorf("evt import: no bar: %q", errOut)
	}
}
