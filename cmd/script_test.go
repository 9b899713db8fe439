package cmd

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "update testscript files when a cmp with a file inside the archive fails")

// TestMain lets the test binary act as evt: testscript puts a copy of it,
// named evt, first in the scripts' PATH, and running it calls Main.
// testscript.Main picks the command by the base name of os.Args[0], so the
// process tests run the test binary as "evt" or as "evt-appender" (see
// process_test.go) by setting Args[0].
//
// Under -race every process of a race-built binary sleeps a second at
// exit (the race runtime's atexit_sleep_ms, in racefini), and the
// scripts and process tests start thousands of them: that was the "hang
// at exit" of go test -race ./cmd. The children get no sleep
// (testscript passes GORACE on); a GORACE set by the caller wins.
func TestMain(m *testing.M) {
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	testscript.Main(cleanupAfter{m}, map[string]func(){
		"evt": func() {
			// The test binary is evt and evt-nats at once: it opens a
			// nats store itself (the harness's nats run sets EVT_STORE).
			RegisterRemote(openNatsStore)
			RegisterSchemaCompiler(compileSchemas) // and evt-schema
			os.Exit(Main())
		},
		"evt-appender": func() {
			RegisterRemote(openNatsStore)
			os.Exit(appenderMain(os.Args[1:]))
		},
		"nats-server": func() { os.Exit(natsServerMain(os.Args[1:])) },
	})
}

// cleanupAfter runs the tests, then removes what they left for the
// whole run (the binaries builtBinaries made).
type cleanupAfter struct{ m *testing.M }

func (c cleanupAfter) Run() int {
	code := c.m.Run()
	removeBuiltBinaries()
	return code
}

// TestScript runs the CLI scripts in ../testdata/script, each in a fresh
// work directory with its own home, XDG directories and no EVT_ variables.
func TestScript(t *testing.T) {
	testscript.Run(t, scriptParams(filepath.Join("..", "testdata", "script"), nil, ""))
}

// scriptParams are the testscript parameters of a run of the scripts in
// dir (or only files, when not nil); store, when not "", is the EVT_STORE
// of every script, and a script gets a store of its own (a stream named
// after it).
func scriptParams(dir string, files []string, store string) testscript.Params {
	if files != nil {
		dir = ""
	}
	return testscript.Params{
		Dir:           dir,
		Files:         files,
		UpdateScripts: *update,
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "nats":
				return store != "", nil
			case "rostore":
				return rostoreWorks(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"exits":    cmdExits,
			"bigfile":  cmdBigfile,
			"waitgone": cmdWaitGone,
			"readonly": cmdReadonly,
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
			if store != "" {
				e.Setenv("EVT_STORE", store+"/"+scriptStream(e.WorkDir))
			}
			// The README's recipes are files of their own, so the
			// scripts that prove them run the very file users read.
			recipes, err := filepath.Abs(filepath.Join("..", "testdata", "recipes"))
			if err != nil {
				return err
			}
			e.Setenv("RECIPES", recipes)
			return os.MkdirAll(home, 0o777)
		},
	}
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

// cmdBigfile is the script command `bigfile NAME SIZE [PREFIX SUFFIX]`: it
// writes PREFIX, a JSON string of exactly SIZE bytes (quotes included),
// SUFFIX and a newline to NAME, for inputs near the 1 MiB record limit
// that would not fit in a txtar file. A \n in PREFIX or SUFFIX is a
// newline, so the big value can be one line of several.
func cmdBigfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || (len(args) != 2 && len(args) != 4) {
		ts.Fatalf("usage: bigfile NAME SIZE [PREFIX SUFFIX]")
	}
	size, err := strconv.Atoi(args[1])
	if err != nil || size < 2 {
		ts.Fatalf("bigfile: bad size %q", args[1])
	}
	var b strings.Builder
	if len(args) == 4 {
		b.WriteString(strings.ReplaceAll(args[2], `\n`, "\n"))
	}
	b.WriteByte('"')
	b.WriteString(strings.Repeat("x", size-2))
	b.WriteByte('"')
	if len(args) == 4 {
		b.WriteString(strings.ReplaceAll(args[3], `\n`, "\n"))
	}
	b.WriteByte('\n')
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o666))
}

// cmdWaitGone is the script command `waitgone PATH`: it waits until PATH
// no longer exists, for work a detached process does (evt compact --auto).
// It gives up after a minute: a bound for a hung test, not a speed check.
func cmdWaitGone(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitgone PATH")
	}
	path := ts.MkAbs(args[0])
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return
		}
	}
	ts.Fatalf("waitgone: %s still exists after a minute", args[0])
}

// cmdReadonly is the script command `readonly DIR PROG [ARGS...]`: it runs
// PROG like exec while DIR and everything in it cannot be written, as for
// a monitoring account without write access. A user other than root gets
// chmod -R a-w (undone afterwards); root, whom permissions do not stop,
// gets a read-only bind mount of DIR in a mount namespace of its own
// (unshare -m). A script that uses it starts with [!rostore] skip: the
// condition is false where neither is possible.
func cmdReadonly(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: readonly DIR PROG [ARGS...]")
	}
	dir := ts.MkAbs(args[0])
	var err error
	if os.Geteuid() != 0 {
		chmodAll(ts, dir, false)
		err = ts.Exec(args[1], args[2:]...)
		chmodAll(ts, dir, true)
	} else {
		sh := `mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"`
		err = ts.Exec("unshare", append([]string{"-m", "sh", "-c", sh, dir}, args[1:]...)...)
	}
	if err != nil && !neg {
		ts.Fatalf("readonly %s: %v", args[1], err)
	}
	if err == nil && neg {
		ts.Fatalf("readonly %s: unexpected success", args[1])
	}
}

// chmodAll takes write permission from (or gives it back to) the owner,
// group and others of dir and everything under it.
// rostoreWorks reports whether cmdReadonly can make a directory read-only
// here: as a user other than root, or as root allowed to bind-mount in a
// mount namespace of its own.
func rostoreWorks() bool {
	if os.Geteuid() != 0 {
		return true
	}
	dir, err := os.MkdirTemp("", "rostore")
	if err != nil {
		return false
	}
	defer os.Remove(dir)
	probe := exec.Command("unshare", "-m", "sh", "-c", `mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && ! touch "$0/x" 2>/dev/null`, dir)
	return probe.Run() == nil
}

func chmodAll(ts *testscript.TestScript, dir string, writable bool) {
	ts.Check(filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm() &^ 0o222
		if writable {
			mode |= 0o200
		}
		return os.Chmod(path, mode)
	}))
}
