package cmd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mattn/go-runewidth"
	"github.com/spf13/cobra"
)

// TestHelpFits80: every example and every line of the help texts as
// written fits 80 columns, so help reads unwrapped on a standard terminal
// and an example can be copied whole.
func TestHelpFits80(t *testing.T) {
	ios, _, _, _ := newTestIOStreams()
	root := newRootCmd(ios)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "completion" {
			return // cobra writes completion's texts
		}
		for _, text := range []string{c.Example, c.Long} {
			for _, line := range strings.Split(text, "\n") {
				if w := runewidth.StringWidth(line); w > 80 {
					t.Errorf("evt %s: a line of %d columns: %q", c.CommandPath(), w, line)
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// runHelpWidth prints evt ARGS... --help on a fake terminal of width
// columns.
func runHelpWidth(t *testing.T, width int, args ...string) string {
	t.Helper()
	return runEvtWidth(t, width, args...)
}

// TestHelpGolden: help at 40, 80 and 160 columns, wrapped at word
// boundaries, nothing wider than the terminal.
func TestHelpGolden(t *testing.T) {
	isolate(t)
	for _, w := range terminalWidths {
		var b strings.Builder
		for _, args := range [][]string{{"--help"}, {"tail", "--help"}, {"help", "cursors"}} {
			out := runHelpWidth(t, w, args...)
			for _, line := range strings.Split(out, "\n") {
				if lw := runewidth.StringWidth(line); lw >= w && !strings.Contains(strings.TrimSpace(line), " ") {
					continue // one word longer than the line: nowhere to break it
				} else if lw >= w {
					t.Errorf("evt %s at %d columns: a line of %d: %q", strings.Join(args, " "), w, lw, line)
				}
			}
			fmt.Fprintf(&b, "$ evt %s\n%s\n", strings.Join(args, " "), out)
		}
		checkGolden(t, fmt.Sprintf("help-%d.txt", w), b.String())
	}
	// Piped, help is printed as written.
	_, piped, _ := runEvt(t, "tail", "--help")
	if wrapped := runHelpWidth(t, 160, "tail", "--help"); piped != wrapped {
		t.Errorf("help piped differs from help at 160 columns")
	}
}

func TestWrapText(t *testing.T) {
	in := "A paragraph of prose that is far too long for the line.\n" +
		"\n" +
		"      --flag string   a description that goes on\n" +
		"    word\n"
	want := "A paragraph of prose that is\nfar too long for the line.\n" +
		"\n" +
		"      --flag string\n" +
		"          a description that\n" +
		"          goes on\n" +
		"    word\n"
	if got := wrapText(in, 30); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := wrapText(in, 0); got != in {
		t.Errorf("width 0 changed the text")
	}
}

// TestMistypedCommandWithFlag: evt taill -f suggests tail, as evt taill
// does, rather than complaining about -f.
func TestMistypedCommandWithFlag(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{"taill"}, {"taill", "-f"}, {"taill", "--from", "start"}} {
		code, _, errOut := runEvt(t, args...)
		if code != exitUsage || !strings.Contains(errOut, `(did you mean "tail"?)`) {
			t.Errorf("evt %s: exit %d, %q; want exit 2 and did you mean tail", strings.Join(args, " "), code, errOut)
		}
	}
	if code, _, errOut := runEvt(t, "tail", "-x"); code != exitUsage || !strings.Contains(errOut, "-x") {
		t.Errorf("evt tail -x: exit %d, %q", code, errOut)
	}
}
