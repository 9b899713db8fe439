package cmd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestHelpTopics checks that each topic is a cobra help topic (listed
// under "Additional help topics", nothing to run) and that `evt help
// TOPIC`, `evt TOPIC` and `evt TOPIC --help` print the same text.
func TestHelpTopics(t *testing.T) {
	ios, _, _, _ := newTestIOStreams()
	root := newRootCmd(ios)
	for _, name := range []string{"exit-codes", "cursors", "formats"} {
		t.Run(name, func(t *testing.T) {
			c, rest, err := root.Find([]string{name})
			if err != nil || len(rest) > 0 || c.Name() != name {
				t.Fatalf("no topic %s: %v", name, err)
			}
			if !c.IsAdditionalHelpTopicCommand() || c.Runnable() {
				t.Errorf("%s is not a help topic", name)
			}
			var first string
			for _, args := range [][]string{{"help", name}, {name}, {name, "--help"}} {
				code, out, errOut := runHelp(t, args...)
				if code != 0 || errOut != "" {
					t.Errorf("evt %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
				}
				if !strings.HasPrefix(out, c.Long) {
					t.Errorf("evt %s printed\n%s\nwant the topic's text", strings.Join(args, " "), out)
				}
				if first == "" {
					first = out
				} else if out != first {
					t.Errorf("evt %s printed another text than evt help %s", strings.Join(args, " "), name)
				}
			}
		})
	}
	_, out, _ := runHelp(t, "--help")
	if !strings.Contains(out, "\nAdditional help topics:\n  evt cursors ") {
		t.Errorf("evt --help lists no help topics:\n%s", out)
	}
}

// TestHelpExitCodes checks the codes the exit-codes topic lists against
// the constants Main exits with.
func TestHelpExitCodes(t *testing.T) {
	_, out, _ := runHelp(t, "help", "exit-codes")
	for _, code := range []int{exitOK, exitError, exitUsage, exitConflict, exitNotFound, exitInterrupted} {
		if !strings.Contains(out, "\n    "+strconv.Itoa(code)+" ") {
			t.Errorf("exit-codes does not explain exit %d", code)
		}
	}
}

func TestHelpUnknownTopic(t *testing.T) {
	for _, args := range [][]string{{"help", "nosuch"}, {"help", "tail", "nosuch"}, {"help", "exit-codes", "more"}} {
		code, out, errOut := runHelp(t, args...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errOut, "evt: unknown help topic ") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("evt %s: exit %d, stdout %q, stderr %q; want exit 2 and one line on stderr", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// TestDocsReproducible generates both references twice and compares
// every file.
func TestDocsReproducible(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("SOURCE_DATE_EPOCH", "")
	for _, kind := range []string{"--man", "--markdown"} {
		var trees [2]map[string]string
		for i := range trees {
			dir := filepath.Join(kind[2:], strconv.Itoa(i))
			if code, out, errOut := runHelp(t, "docs", kind, dir); code != 0 || out != "" || errOut != "" {
				t.Fatalf("evt docs %s %s: exit %d, stdout %q, stderr %q", kind, dir, code, out, errOut)
			}
			trees[i] = readTree(t, dir)
			if i == 0 {
				time.Sleep(10 * time.Millisecond) // a clock in the output would show
			}
		}
		if len(trees[0]) < 20 {
			t.Errorf("evt docs %s wrote only %d files", kind, len(trees[0]))
		}
		for name, text := range trees[0] {
			if trees[1][name] != text {
				t.Errorf("evt docs %s: %s differs between two runs", kind, name)
			}
			if strings.Contains(text, "Auto generated") {
				t.Errorf("evt docs %s: %s has cobra's auto-generated tag", kind, name)
			}
		}
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

func TestDocsDate(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1764064800")
	d, err := docsDate()
	if err != nil || !d.Equal(time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("with SOURCE_DATE_EPOCH: %v, %v", d, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "")
	d1, _ := docsDate()
	d2, _ := docsDate()
	if !d1.Equal(d2) || time.Since(d1) < time.Minute {
		t.Errorf("without SOURCE_DATE_EPOCH: %v then %v; want a fixed date, not the clock", d1, d2)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "tuesday")
	if _, err := docsDate(); err == nil || exitCode(err, false) != exitUsage {
		t.Errorf("a bad SOURCE_DATE_EPOCH: %v, want a usage error", err)
	}
}

func TestMarkdownText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"prose", "one line\ntwo lines", "one line\ntwo lines"},
		{"html in prose", "env (EVT_<FLAG>)", "env (EVT_\\<FLAG>)"},
		{"block after a blank line",
			"forms:\n\n  evt a   one\n  evt b   two\n\nafter",
			"forms:\n\n    evt a   one\n    evt b   two\n\nafter"},
		{"block right after prose, prose right after it",
			"forms:\n  evt a\n    more\nafter",
			"forms:\n\n    evt a\n      more\n\nafter"},
		{"blank line inside a block", "x\n\n  a\n\n  b\n", "x\n\n    a\n\n    b\n"},
		{"four spaces stay", "x\n\n    a < b\n", "x\n\n    a < b\n"},
	}
	for _, tt := range tests {
		if got := markdownText(tt.in); got != tt.want {
			t.Errorf("%s: markdownText(%q)\n got %q\nwant %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestHelpCompletesTopics checks that `evt help <TAB>` offers the topics
// besides the commands.
func TestHelpCompletesTopics(t *testing.T) {
	_, out, _ := runHelp(t, "__complete", "help", "")
	for _, want := range []string{"tail\t", "cursors\t", "exit-codes\t", "formats\t"} {
		if !strings.Contains(out, "\n"+want) && !strings.HasPrefix(out, want) {
			t.Errorf("evt help <TAB> does not offer %q:\n%s", want, out)
		}
	}
}

// runHelp runs evt in the test process with no store or config around.
func runHelp(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("EVT_DIR", "")
	t.Setenv("EVT_CONFIG", "")
	ios, _, out, errOut := newTestIOStreams()
	code = run(context.Background(), ios, args)
	if _, err := os.Stat(filepath.Join(home, "data", "evt")); err == nil {
		t.Errorf("evt %s created a store", strings.Join(args, " "))
	}
	return code, out.String(), errOut.String()
}

// TestManPagesRender renders every page `evt docs --man` writes with
// man -l (man-db and groff; skipped where man is missing) and checks that
// man warns about nothing, that no roff leaks into the text, and that each
// page shows its name, its short description and, for a command, its
// flags as typed: --flag with two ASCII hyphens.
func TestManPagesRender(t *testing.T) {
	manPath, err := exec.LookPath("man")
	if err != nil {
		t.Skip("no man on PATH (apt-get install man-db groff-base)")
	}
	dir := t.TempDir()
	if code, _, errOut := runHelp(t, "docs", "--man", dir); code != 0 {
		t.Fatalf("evt docs --man: exit %d, %s", code, errOut)
	}
	ios, _, _, _ := newTestIOStreams()
	root := newRootCmd(ios)
	want := map[string][]string{} // page → lines its rendering must contain
	visitDocCommands(root, func(c *cobra.Command) {
		page := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		want[page] = []string{strings.ReplaceAll(c.CommandPath(), " ", "-") + " - " + c.Short, "--help"}
	})
	for _, topic := range []string{"exit-codes", "cursors", "formats"} {
		c, _, _ := root.Find([]string{topic})
		want["evt-"+topic+".1"] = []string{"evt-" + topic + " - " + c.Short, "evt help " + topic}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(want) {
		t.Errorf("evt docs --man wrote %d pages, want %d", len(ents), len(want))
	}
	for _, e := range ents {
		lines, ok := want[e.Name()]
		if !ok {
			t.Errorf("evt docs --man wrote %s, which is no command's or topic's page", e.Name())
			continue
		}
		man := exec.Command(manPath, "--warnings", "-l", "-E", "UTF-8", "-P", "cat", filepath.Join(dir, e.Name()))
		man.Env = append(os.Environ(), "MANWIDTH=200", "LC_ALL=C.UTF-8", "MAN_KEEP_FORMATTING=")
		var stdout, stderr strings.Builder
		man.Stdout, man.Stderr = &stdout, &stderr
		if err := man.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man -l %s: %v: %s", e.Name(), err, stderr.String())
			continue
		}
		out := stdout.String()
		if strings.Contains(out, "minimized") && strings.Count(out, "\n") < 5 {
			t.Skip("man is the minimized system's stub")
		}
		for _, l := range lines {
			if !strings.Contains(out, l) {
				t.Errorf("man -l %s does not show %q:\n%s", e.Name(), l, out)
			}
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), ".") || strings.Contains(l, `\f`) || strings.Contains(l, `\-`) {
				t.Errorf("man -l %s shows roff: %q", e.Name(), l)
			}
		}
	}
}
