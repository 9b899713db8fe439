package cmd

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "update testscript files when a cmp with a file inside the archive fails")

// TestMain lets the test binary act as evt: testscript puts a copy of it,
// named evt, first in the scripts' PATH, and running it calls Main.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"evt": func() { os.Exit(Main()) },
	})
}

// TestScript runs the CLI scripts in ../testdata/script, each in a fresh
// work directory with its own home, XDG directories and no EVT_ variables.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("..", "testdata", "script"),
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"exits": cmdExits,
		},
		Setup: func(e *testscript.Env) error {
			vars := e.Vars[:0]
			for _, kv := range e.Vars {
				if !strings.HasPrefix(kv, "EVT_") && !strings.HasPrefix(kv, "NO_COLOR=") {
					vars = append(vars, kv)
				}
			}
			e.Vars = vars
			home := filepath.Join(e.WorkDir, ".home")
			e.Setenv("HOME", home)
			e.Setenv("XDG_DATA_HOME", filepath.Join(home, ".local", "share"))
			e.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
			return os.MkdirAll(home, 0o777)
		},
	})
}

// cmdExits is the script command `exits CODE PROG [ARGS...]`: it runs PROG
// like exec and fails unless it exits with CODE, because exec alone can
// only tell zero from non-zero and evt's exit codes are part of CLI.md.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad exit code %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}
