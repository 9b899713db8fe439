package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evtdev/evt/log"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// isolate gives the test an empty working directory and home, and clears
// every variable that could leak a setting in. Tests using it cannot be
// parallel (t.Setenv, t.Chdir).
func isolate(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "EVT_") || name == "NO_COLOR" {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	t.Setenv("HOME", filepath.Join(dir, "home"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Chdir(dir)
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o666); err != nil {
		t.Fatal(err)
	}
}

// runEvt runs one command line in process and returns its exit code and
// output.
func runEvt(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ios, _, out, errOut := newTestIOStreams()
	code = run(context.Background(), ios, args)
	return code, out.String(), errOut.String()
}

// effective runs `evt ARGS... config -o json` and returns key → setting.
func effective(t *testing.T, args ...string) map[string]setting {
	t.Helper()
	code, out, errOut := runEvt(t, append(args, "config", "-o", "json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got := map[string]setting{}
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var s setting
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("decoding %q: %v", out, err)
		}
		got[s.Key] = s
	}
	return got
}

func TestConfigPrecedence(t *testing.T) {
	type want struct{ value, source string }
	tests := []struct {
		name  string
		local string            // ./evt.yaml, if not ""
		xdg   string            // $XDG_CONFIG_HOME/evt/config.yaml, if not ""
		env   map[string]string // EVT_ variables
		args  []string          // flags before `config`
		want  map[string]want   // key → value and source ("file" means file:PATH)
	}{{
		name: "defaults",
		want: map[string]want{
			"sync":         {"always", "default"},
			"lock-timeout": {"10s", "default"},
			"output":       {"json", "flag"}, // effective adds -o json
		},
	}, {
		name: "xdg file",
		xdg:  "sync: none\nlock-timeout: 1m\n",
		want: map[string]want{"sync": {"none", "file"}, "lock-timeout": {"1m", "file"}},
	}, {
		name:  "local file shadows xdg file",
		local: "sync: interval\n",
		xdg:   "sync: none\nlock-timeout: 1m\n",
		want:  map[string]want{"sync": {"interval", "file"}, "lock-timeout": {"10s", "default"}},
	}, {
		name:  "env over file",
		local: "sync: interval\nlock-timeout: 1m\n",
		env:   map[string]string{"EVT_SYNC": "none"},
		want:  map[string]want{"sync": {"none", "env"}, "lock-timeout": {"1m", "file"}},
	}, {
		name:  "flag over env over file",
		local: "sync: interval\n",
		env:   map[string]string{"EVT_SYNC": "none", "EVT_LOCK_TIMEOUT": "3s"},
		args:  []string{"--sync", "always"},
		want:  map[string]want{"sync": {"always", "flag"}, "lock-timeout": {"3s", "env"}},
	}, {
		name: "empty env is unset",
		xdg:  "sync: interval\n",
		env:  map[string]string{"EVT_SYNC": ""},
		want: map[string]want{"sync": {"interval", "file"}},
	}, {
		name:  "yaml null leaves the default",
		local: "sync:\n",
		want:  map[string]want{"sync": {"always", "default"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := isolate(t)
			localPath := filepath.Join(dir, "evt.yaml")
			xdgPath := filepath.Join(dir, "config", "evt", "config.yaml")
			if tt.local != "" {
				writeFile(t, localPath, tt.local)
			}
			if tt.xdg != "" {
				writeFile(t, xdgPath, tt.xdg)
			}
			filePath := xdgPath
			if tt.local != "" {
				filePath = localPath
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got := effective(t, tt.args...)
			for key, w := range tt.want {
				if w.source == "file" {
					w.source = "file:" + filePath
				}
				if g := got[key]; g.Value != w.value || g.Source != w.source {
					t.Errorf("%s = %q from %q, want %q from %q", key, g.Value, g.Source, w.value, w.source)
				}
			}
		})
	}
}

func TestStoreDir(t *testing.T) {
	dir := isolate(t)
	tests := []struct {
		name string
		env  map[string]string
		file string
		args []string
		want string
	}{
		{name: "xdg", want: filepath.Join(dir, "data", "evt")},
		{name: "no xdg", env: map[string]string{"XDG_DATA_HOME": ""}, want: filepath.Join(dir, "home", ".local", "share", "evt")},
		{name: "relative xdg is ignored", env: map[string]string{"XDG_DATA_HOME": "rel"}, want: filepath.Join(dir, "home", ".local", "share", "evt")},
		{name: "file", file: "dir: /f\n", want: "/f"},
		{name: "tilde in file", file: "dir: ~/events\n", want: filepath.Join(dir, "home", "events")},
		{name: "env over file", file: "dir: /f\n", env: map[string]string{"EVT_DIR": "/e"}, want: "/e"},
		{name: "flag over env", env: map[string]string{"EVT_DIR": "/e"}, args: []string{"--dir", "/d"}, want: "/d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			os.Remove(filepath.Join(dir, "evt.yaml"))
			if tt.file != "" {
				writeFile(t, filepath.Join(dir, "evt.yaml"), tt.file)
			}
			if got := effective(t, tt.args...)["dir"].Value; got != tt.want {
				t.Errorf("dir = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		file     string // ./evt.yaml
		env      map[string]string
		args     []string
		wantCode int
		wantErr  string // the whole stderr, with $DIR for the work directory
	}{{
		name:     "missing --config",
		args:     []string{"--config", "nope.yaml"},
		wantCode: 1,
		wantErr:  "evt: config file $DIR/nope.yaml: no such file or directory\n",
	}, {
		name:     "missing EVT_CONFIG",
		env:      map[string]string{"EVT_CONFIG": "nope.yaml"},
		wantCode: 1,
		wantErr:  "evt: config file $DIR/nope.yaml: no such file or directory\n",
	}, {
		name:     "invalid yaml",
		file:     "sync: [\n",
		wantCode: 1,
		wantErr:  "evt: config file $DIR/evt.yaml: yaml: line 1: did not find expected node content\n",
	}, {
		name:     "bad enum in file",
		file:     "sync: sometimes\n",
		wantCode: 2,
		wantErr:  `evt: config file $DIR/evt.yaml: sync: invalid value "sometimes": want always, interval or none` + "\n",
	}, {
		name:     "mapping for a scalar",
		file:     "sync:\n  a: 1\n",
		wantCode: 2,
		wantErr:  "evt: config file $DIR/evt.yaml: sync: want a single value, not a mapping\n",
	}, {
		name:     "bad duration in env",
		env:      map[string]string{"EVT_LOCK_TIMEOUT": "10"},
		wantCode: 2,
		wantErr:  `evt: EVT_LOCK_TIMEOUT: invalid value "10": want a duration such as 90s, 10m, 1h30m or 7d` + "\n",
	}, {
		name:     "bad env shadowed by flag",
		env:      map[string]string{"EVT_SYNC": "sometimes"},
		args:     []string{"--sync", "none"},
		wantCode: 0,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := isolate(t)
			if tt.file != "" {
				writeFile(t, filepath.Join(dir, "evt.yaml"), tt.file)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, errOut := runEvt(t, append(tt.args, "version")...)
			wantErr := strings.ReplaceAll(tt.wantErr, "$DIR", dir)
			if code != tt.wantCode || errOut != wantErr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, errOut, tt.wantCode, wantErr)
			}
		})
	}
}

// A command that evt --exec runs (it has EVT_POSITION) inherits EVT_TYPE
// and friends; they must not turn into that command's --type flag. The
// file may still set it. Anywhere else, EVT_TYPE is --type's variable.
func TestExecVariablesAreNotFlags(t *testing.T) {
	dir := isolate(t)
	t.Setenv("EVT_TYPE", "Deposited")
	t.Setenv("EVT_COUNT", "3")
	probe := func() (typ *[]string, count *int, changed func() bool) {
		ios, _, _, _ := newTestIOStreams()
		p := &cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error { return nil }}
		typ, count = p.Flags().StringArray("type", nil, ""), p.Flags().Int("count", 0, "")
		root := newRootCmd(ios)
		root.AddCommand(p)
		root.SetArgs([]string{"probe"})
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		return typ, count, func() bool { return p.Flags().Lookup("type").Changed }
	}

	if typ, _, _ := probe(); fmt.Sprint(*typ) != "[Deposited]" {
		t.Errorf("--type = %q outside --exec, want [Deposited] from EVT_TYPE", *typ)
	}
	t.Setenv("EVT_TYPE", "Opened,Closed")
	if typ, _, _ := probe(); fmt.Sprint(*typ) != "[Opened Closed]" {
		t.Errorf("--type = %q, want [Opened Closed] from EVT_TYPE=Opened,Closed", *typ)
	}

	t.Setenv("EVT_POSITION", "42")
	typ, count, changed := probe()
	if len(*typ) != 0 || changed() {
		t.Errorf("--type = %q (changed %v) from EVT_TYPE under --exec, want unset", *typ, changed())
	}
	if *count != 3 {
		t.Errorf("--count = %d, want 3 from EVT_COUNT", *count)
	}

	writeFile(t, filepath.Join(dir, "evt.yaml"), "type: Withdrawn\n")
	if typ, _, _ = probe(); fmt.Sprint(*typ) != "[Withdrawn]" {
		t.Errorf("--type = %q, want Withdrawn from the file", *typ)
	}
}

// Every flag of every command can be set from EVT_<FLAG> (CLI.md,
// "Everywhere"), slices and repeatable flags included: the test walks the
// command tree, so a new flag is covered without a new test, and a flag
// of a type it has no value for fails it until one is added here.
func TestEveryFlagFromEnv(t *testing.T) {
	// A value for each flag type, and what the flag shows afterwards.
	byType := map[string][2]string{
		"bool":        {"true", "true"},
		"int":         {"7", "7"},
		"int64":       {"7", "7"},
		"uint32":      {"7", "7"},
		"uint64":      {"7", "7"},
		"duration":    {"1d12h", "1d12h"},
		"string":      {"x", "x"},
		"stringArray": {"A,B", "[A,B]"},
		"stringSlice": {"A,B", "[A,B]"},
	}
	byName := map[string][2]string{ // flags that take only some strings
		"sync": {"none", "none"},
	}
	ios, _, _, _ := newTestIOStreams()
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(newRootCmd(ios), nil)

	flags := 0
	for _, path := range paths {
		t.Run(strings.Join(append([]string{"evt"}, path...), " "), func(t *testing.T) {
			isolate(t)
			root := newRootCmd(ios)
			cmd, _, err := root.Find(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags(nil); err != nil { // merges the persistent flags in
				t.Fatal(err)
			}
			want, env := map[string]string{}, map[string]string{}
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if notSettings[f.Name] {
					return
				}
				v, ok := byName[f.Name]
				if !ok {
					if v, ok = byType[f.Value.Type()]; !ok {
						t.Errorf("--%s: no test value for a flag of type %s; add one", f.Name, f.Value.Type())
						return
					}
				}
				t.Setenv(envName(f.Name), v[0])
				want[f.Name], env[f.Name] = v[1], v[0]
			})
			if err := root.PersistentPreRunE(cmd, nil); err != nil {
				t.Fatalf("loading the environment: %v", err)
			}
			for name, w := range want {
				f := cmd.Flags().Lookup(name)
				if got := f.Value.String(); !f.Changed || got != w {
					t.Errorf("%s=%s: --%s = %q (changed %v), want %q", envName(name), env[name], name, got, f.Changed, w)
				}
				flags++
			}
		})
	}
	if flags < 50 {
		t.Errorf("only %d flags checked: is the command tree walked?", flags)
	}
}

func TestConfigTable(t *testing.T) {
	isolate(t)
	ios, _, out, _ := newTestIOStreams()
	ios.SetStdoutTTY(true)
	if code := run(context.Background(), ios, []string{"config"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := len(lines) - 1
	if len(lines) < 6 || !strings.HasPrefix(strings.TrimSpace(lines[0]), "KEY ") || !strings.HasPrefix(strings.TrimSpace(lines[last]), "sync ") {
		t.Errorf("table:\n%s", out)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err         error
		interrupted bool
		want        int
	}{
		{nil, false, 0},
		{errors.New("boom"), false, 1},
		{usageErrorf("bad %s", "flag"), false, 2},
		{fmt.Errorf("config: %w", usageErrorf("bad")), false, 2},
		{fmt.Errorf("stream x: %w", log.ErrConflict), false, 3},
		{fmt.Errorf("stream x: %w", log.ErrNotFound), false, 4},
		{fmt.Errorf("open: %w", log.ErrNoStore), false, 4},
		{&log.CorruptError{File: "s", Offset: -1, Reason: "r"}, false, 1},
		{context.Canceled, true, 130},
		{errors.New("write: broken pipe"), true, 130},
		{nil, true, 0}, // finished all the same: an append past its commit point
	}
	for _, tt := range tests {
		if got := exitCode(tt.err, tt.interrupted); got != tt.want {
			t.Errorf("exitCode(%v, %v) = %d, want %d", tt.err, tt.interrupted, got, tt.want)
		}
	}
}

func TestErrorLine(t *testing.T) {
	tests := []struct{ msg, want string }{
		{"plain", "evt: plain"},
		{"two\nlines", "evt: two; lines"},
		{"unknown command \"x\"\n\nDid you mean this?\n\tversion\n", `evt: unknown command "x"; Did you mean this?; version`},
		{"crlf\r\nend", "evt: crlf; end"},
	}
	for _, tt := range tests {
		if got := errorLine(errors.New(tt.msg)); got != tt.want {
			t.Errorf("errorLine(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

// TestInterrupted: a cancelled context stops a command that reads it
// (exit 130, no error line) and nothing else; one that finishes exits 0.
func TestInterrupted(t *testing.T) {
	isolate(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ios, _, _, errOut := newTestIOStreams()
	if code := run(ctx, ios, []string{"tail", "-f"}); code != exitInterrupted {
		t.Errorf("tail -f: exit %d, want %d", code, exitInterrupted)
	}
	if errOut.Len() != 0 {
		t.Errorf("tail -f: stderr %q, want nothing", errOut)
	}
	ios, _, _, errOut = newTestIOStreams()
	if code := run(ctx, ios, []string{"version"}); code != exitOK {
		t.Errorf("version: exit %d, want %d (%s)", code, exitOK, errOut)
	}
	// An append given a done context writes nothing.
	ios, _, _, errOut = newTestIOStreams()
	if code := run(ctx, ios, []string{"append", "s", "T", "{}"}); code != exitInterrupted {
		t.Errorf("append: exit %d, want %d (%s)", code, exitInterrupted, errOut)
	}
	ios, _, out, _ := newTestIOStreams()
	if code := run(context.Background(), ios, []string{"streams", "-o", "json"}); code != exitOK && code != exitNotFound || out.Len() != 0 {
		t.Errorf("after the interrupted append: streams exit %d, %q; want no stream", code, out)
	}
}

func TestSystemStreams(t *testing.T) {
	isolate(t)
	// go test's stdout is a pipe or file here, never a terminal.
	t.Setenv("EVT_FORCE_TTY", "1")
	if s := System(); !s.IsStdoutTTY() || !s.ColorEnabled() {
		t.Errorf("EVT_FORCE_TTY=1: tty %v colour %v, want both", s.IsStdoutTTY(), s.ColorEnabled())
	}
	t.Setenv("NO_COLOR", "1")
	if s := System(); !s.IsStdoutTTY() || s.ColorEnabled() {
		t.Errorf("NO_COLOR=1: tty %v colour %v, want tty without colour", s.IsStdoutTTY(), s.ColorEnabled())
	}
	t.Setenv("EVT_FORCE_TTY", "0")
	t.Setenv("NO_COLOR", "")
	if f, err := os.Open(os.DevNull); err == nil {
		defer f.Close()
		if isTerminal(f) {
			t.Errorf("%s is a terminal", os.DevNull)
		}
	}
}

// BenchmarkStartup measures one in-process run of `evt version`: building
// the command tree, resolving config and printing, without process start.
func BenchmarkStartup(b *testing.B) {
	ios, _, out, _ := newTestIOStreams()
	for b.Loop() {
		out.Reset()
		if code := run(context.Background(), ios, []string{"version"}); code != 0 {
			b.Fatal(code)
		}
	}
}
