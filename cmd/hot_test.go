package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestHotCommand checks which command lines get the one-command tree: a
// hot command word after global flags only, and never a line that asks
// for help or that the peek cannot read.
func TestHotCommand(t *testing.T) {
	hot := [][]string{
		{"append", "s-1", "T"},
		{"append"},
		{"--dir", "x", "append", "s-1", "T", "{}"},
		{"--dir=x", "append"},
		{"--dir", "append", "append"}, // the first append is --dir's value
		{"-o", "json", "append"},
		{"-ojson", "append"},
		{"-o=json", "--sync", "none", "--lock-timeout=1s", "--config", "c.yaml", "--jq", ".id", "--segment-size", "9", "append"},
		{"append", "s-1", "T", "-", "--expect", "none", "-q"},
	}
	cold := [][]string{
		{},
		{"streams"},
		{"apend", "s-1", "T"},
		{"help", "append"},
		{"append", "--help"},
		{"append", "s-1", "T", "-h"},
		{"append", "--help=true"},
		{"--help", "append"},
		{"-h", "append"},
		{"--version", "append"},
		{"--", "append"},
		{"--bogus", "append"},
		{"-q", "append"},
		{"--dir"},
		{"--dir", "x"},
		{"__complete", "append", ""},
		{"completion", "bash"},
		{"--dir", "x", "tail", "append"},
	}
	for _, args := range hot {
		if hotCommand(args) == nil {
			t.Errorf("evt %s: builds the whole tree, want only append", strings.Join(args, " "))
		}
	}
	for _, args := range cold {
		if hotCommand(args) != nil {
			t.Errorf("evt %s: builds only append, want the whole tree", strings.Join(args, " "))
		}
	}
	ios, _, _, _ := newTestIOStreams()
	if n := len(newRootCmdFor(ios, []string{"append", "s-1", "T"}).Commands()); n != 1 {
		t.Errorf("the tree of evt append has %d commands, want 1", n)
	}
	if n := len(newRootCmdFor(ios, []string{"streams"}).Commands()); n < 20 {
		t.Errorf("the tree of evt streams has %d commands, want all of them", n)
	}
}

// TestHotCommandFlags keeps globalValueFlags equal to root's persistent
// flags, each of which must take a value, and -o the only shorthand: the
// peek in hotCommand skips exactly these.
func TestHotCommandFlags(t *testing.T) {
	ios, _, _, _ := newTestIOStreams()
	root := newRootCmd(ios)
	seen := map[string]bool{}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		seen[f.Name] = true
		if !globalValueFlags[f.Name] {
			t.Errorf("--%s is a global flag that hotCommand does not know", f.Name)
		}
		if f.NoOptDefVal != "" {
			t.Errorf("--%s may go without a value: hotCommand would skip the word after it", f.Name)
		}
		if f.Shorthand != "" && f.Shorthand != "o" {
			t.Errorf("-%s: hotCommand knows only -o", f.Shorthand)
		}
	})
	for name := range globalValueFlags {
		if !seen[name] {
			t.Errorf("globalValueFlags has --%s, which root does not", name)
		}
	}
}

// TestHotTreeBehavesAsFull runs the same command lines, in order, against
// two stores, one through the hot tree and one through the whole tree,
// and wants the same output, error and exit code from each; and the same
// usage text for append from both trees.
func TestHotTreeBehavesAsFull(t *testing.T) {
	t.Chdir(t.TempDir())
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, "data"))
	t.Setenv("EVT_DIR", "")
	t.Setenv("EVT_CONFIG", "")
	// A config file with a flag of another command (known only to the
	// whole tree) and a key no command has.
	if err := os.WriteFile("other.yaml", []byte("follow: true\ncolour: red\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	lines := [][]string{
		{"append", "s-1", "T", `{"a":1}`, "-q", "--id", "e1"},
		{"append", "s-1", "T", `{"a":1}`, "--id", "e1", "--jq", ".stream"},
		{"append", "s-1", "T", `{"a":2}`, "--expect", "none"},
		{"append", "s-1", "T", `{"a":2}`, "--expect", "1", "--jq", ".version"},
		{"append", "s-1", "T", `{"a":2}`, "--expect", "nonsense"},
		{"append", "s-1"},
		{"append", "s-1", "T", "{"},
		{"append", "s-1", "T", "{}", "extra"},
		{"append", "s-1", "T", "{}", "--bogus"},
		{"append", "bad name", "T"},
		{"append", "s-1", "T", "@missing.json"},
		{"--sync", "bogus", "append", "s-1", "T"},
		{"--lock-timeout", "soon", "append", "s-1", "T"},
		{"-o", "nonsense", "append", "s-1", "T"},
		{"--config", "missing.yaml", "append", "s-1", "T"},
		{"--config", "other.yaml", "append", "s-2", "T", "{}", "-q"},
		{"append", "s-3", "T", "-q"}, // stdin: the test's empty buffer
	}
	for i, args := range lines {
		if hotCommand(args) == nil {
			t.Fatalf("evt %s: not a hot command line", strings.Join(args, " "))
		}
		var got [2]string
		for j, full := range []bool{false, true} {
			ios, _, out, errOut := newTestIOStreams()
			var root = newRootCmdFor(ios, args)
			if full {
				root = newRootCmd(ios)
			}
			root.SetArgs(append([]string{"--dir", fmt.Sprintf("store-%v", full)}, args...))
			err := root.ExecuteContext(context.Background())
			line := ""
			if err != nil {
				line = errorLine(err)
			}
			got[j] = fmt.Sprintf("exit %d\nerror: %s\nstdout: %q\nstderr: %q", exitCode(err, false), line, out.String(), errOut.String())
		}
		if got[0] != got[1] {
			t.Errorf("%d: evt %s:\nhot tree:\n%s\nwhole tree:\n%s", i, strings.Join(args, " "), got[0], got[1])
		}
	}

	ios, _, _, _ := newTestIOStreams()
	hot, _, err := newRootCmdFor(ios, []string{"append"}).Find([]string{"append"})
	if err != nil {
		t.Fatal(err)
	}
	full, _, err := newRootCmd(ios).Find([]string{"append"})
	if err != nil {
		t.Fatal(err)
	}
	if h, f := hot.UsageString(), full.UsageString(); h != f {
		t.Errorf("append's usage differs:\nhot tree:\n%s\nwhole tree:\n%s", h, f)
	}
}
