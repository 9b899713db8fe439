package cmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The shells' own completion scripts (completions/), run by the shells
// where they are installed (Debian: bash-completion, zsh, fish), against
// this test binary acting as evt. Each test types a command line, asks
// the shell what TAB offers, and checks the candidates: the scripts and
// `evt __complete` agree on the bounded set of names.

// shellEnv makes a directory holding "evt" (this test binary, which
// TestMain runs as evt under that name) and returns the environment that
// puts it first in PATH, with a store of many streams.
func shellEnv(t *testing.T, shell string) (env []string, store string) {
	t.Helper()
	if _, err := exec.LookPath(shell); err != nil {
		t.Skipf("%s is not installed", shell)
	}
	dir := isolate(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(bin, "evt")); err != nil {
		t.Fatal(err)
	}
	store = filepath.Join(dir, "store")
	names := append(numbered("account-", 200), numbered("order-", 100)...)
	bigCompletionStore(t, store, append(names, "audit-1"))
	env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "EVT_DIR="+store)
	return env, store
}

func runShell(t *testing.T, env []string, name string, args ...string) []string {
	t.Helper()
	c := exec.Command(name, args...)
	c.Env = env
	var errOut strings.Builder
	c.Stderr = &errOut
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", name, err, out, errOut.String())
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines
}

var shellCases = []struct {
	line string // what is typed before TAB
	want []string
}{
	{"evt tail ", []string{"account-", "audit-1", "order-"}},
	{"evt tail acc", []string{"account-"}},
	{"evt tail account-1", []string{"account-1", "account-10", "account-11", "account-12", "account-13", "account-14", "account-15", "account-16", "account-17", "account-18", "account-19"}},
	{"evt tail order-42", []string{"order-42"}},
	{"evt fold account-1 --at ", nil},
}

func TestCompletionBash(t *testing.T) {
	script, _ := filepath.Abs("../completions/evt.bash") // before shellEnv changes directory
	env, _ := shellEnv(t, "bash")
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		t.Skip("bash-completion is not installed")
	}
	for _, tt := range shellCases {
		t.Run(tt.line, func(t *testing.T) {
			// What readline does on TAB: COMP_* set, the function
			// `complete -F` names called, COMPREPLY read.
			// compopt (which only works inside a real completion) is a no-op.
			prog := `source ` + bashCompletion + `; source ` + script + `
compopt() { :; }
COMP_LINE="$LINE"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"; [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
__start_evt evt "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
			got := runShell(t, append(env, "LINE="+tt.line), "bash", "--norc", "-c", prog)
			if !slices.Equal(got, tt.want) {
				t.Errorf("bash: %q<TAB>\n got %q\nwant %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestCompletionZsh(t *testing.T) {
	script, _ := filepath.Abs("../completions/evt.zsh") // before shellEnv changes directory
	env, _ := shellEnv(t, "zsh")
	for _, tt := range shellCases {
		t.Run(tt.line, func(t *testing.T) {
			// zsh runs _evt inside its completion system; outside it,
			// compdef, _describe and compadd are stood in for by
			// functions (the last two print the candidates they were
			// given), and words/CURRENT are set as the completion
			// system sets them. The script's own logic runs as is.
			prog := `compdef() { :; }
_describe() { local -a arr; while [[ $1 == -* ]]; do shift; done; arr=("${(@P)2}"); for c in $arr; do print -r -- "${c%%:*}"; done; (( ${#arr} )) }
compadd() { local a; for a in "$@"; do [[ $a == -* ]] || print -r -- $a; done }
_arguments() { return 1 }
source ` + script + `
words=(${(z)LINE}); [[ $LINE == *" " ]] && words+=("")
CURRENT=${#words}
_evt; true`
			got := runShell(t, append(env, "LINE="+tt.line), "zsh", "-f", "-c", prog)
			if !slices.Equal(got, tt.want) {
				t.Errorf("zsh: %q<TAB>\n got %q\nwant %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestCompletionFish(t *testing.T) {
	script, _ := filepath.Abs("../completions/evt.fish") // before shellEnv changes directory
	env, _ := shellEnv(t, "fish")
	for _, tt := range shellCases {
		t.Run(tt.line, func(t *testing.T) {
			// complete -C runs fish's own completion engine on a line.
			prog := `source ` + script + `; complete -C "$LINE" | string replace -r '\t.*' ''; true`
			got := runShell(t, append(env, "LINE="+tt.line), "fish", "--no-config", "-c", prog)
			// With NoSpace and one candidate, cobra's fish script adds
			// that candidate + "." so that fish adds no space after it.
			if len(got) == 2 && got[1] == got[0]+"." {
				got = got[:1]
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("fish: %q<TAB>\n got %q\nwant %q", tt.line, got, tt.want)
			}
		})
	}
}
