package torture_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// hostileCase is one bad input. want is the exit code CLI.md gives it:
// 2 for a bad argument, flag or config value, 1 for bad data.
type hostileCase struct {
	name   string
	args   []string // after --dir STORE (and --config FILE if config is set)
	stdin  string
	config string // contents of a config file passed with --config
	want   int
}

func hostileCases() []hostileCase {
	long := strings.Repeat("n", 10<<10)
	deep := strings.Repeat("[", 100_000)
	bigLine := `{"stream":"h-1","type":"Big","data":"` + strings.Repeat("x", 10<<20) + `"}` + "\n"
	var cs []hostileCase
	for _, name := range []string{"a\nb", "a\rb", "a\x01b", "a\xffb", "\xc3\x28", long, "", "a*b", "a?b", "a[b]"} {
		cs = append(cs,
			hostileCase{name: fmt.Sprintf("stream %q as an argument", trim(name)), args: []string{"append", name, "T", "{}"}, want: 2},
			hostileCase{name: fmt.Sprintf("stream %q in an envelope", trim(name)), args: []string{"append"},
				stdin: fmt.Sprintf(`{"stream":%q,"type":"T","data":{}}`+"\n", name), want: 1},
		)
	}
	// NUL cannot travel in an argument; in JSON it can.
	cs = append(cs, hostileCase{name: "stream with NUL in an envelope", args: []string{"append"},
		stdin: `{"stream":"a\u0000b","type":"T","data":{}}` + "\n", want: 1})
	for _, name := range []string{"../x", "../../x", "a/b", "/etc", ".hidden", "a\nb", "a\xffb", long, "a b"} {
		for _, cmd := range [][]string{{"group", "create", name}, {"consume", name, "--once"}, {"ack", name, "1"},
			{"group", "rm", name}, {"group", "show", name}, {"group", "reset", name, "--to", "start"}} {
			cs = append(cs, hostileCase{name: fmt.Sprintf("group %q: %s", trim(name), cmd[0]+" "+cmd[1]), args: cmd, want: 2})
		}
	}
	cs = append(cs,
		hostileCase{name: "type with a newline", args: []string{"append", "h-1", "T\nx", "{}"}, want: 2},
		hostileCase{name: "type of 10 kB", args: []string{"append", "h-1", long, "{}"}, want: 2},
		hostileCase{name: "id of 10 kB", args: []string{"append", "h-1", "T", "{}", "--id", long}, want: 2},
		hostileCase{name: "100k [ as DATA", args: []string{"append", "h-1", "T", deep}, want: 1},
		hostileCase{name: "100k [ on stdin", args: []string{"append", "h-1", "T"}, stdin: deep + "\n", want: 1},
		hostileCase{name: "100k [ as metadata", args: []string{"append", "h-1", "T", "{}", "--meta", deep}, want: 2},
		hostileCase{name: "100k [ in an envelope", args: []string{"append"}, stdin: `{"stream":"h-1","type":"T","data":` + deep + "}\n", want: 1},
		hostileCase{name: "a 10 MB line", args: []string{"append"}, stdin: bigLine, want: 1},
		hostileCase{name: "a 10 MB line of data", args: []string{"append", "h-1", "T"}, stdin: bigLine, want: 1},
		hostileCase{name: "bad JSON on line 3", args: []string{"append"},
			stdin: `{"stream":"h-1","type":"T"}` + "\n" + `{"stream":"h-1","type":"T"}` + "\n" + `{"stream":` + "\n", want: 1},
		hostileCase{name: "invalid UTF-8 in data", args: []string{"append", "h-1", "T", "\"\xff\""}, want: 1},
		hostileCase{name: "fold spec path outside the store", args: []string{"fold", "h-1", "--spec", "../../../../etc/passwd"}, want: 1},
		hostileCase{name: "cursor that is not one", args: []string{"tail", "--from", "../x"}, want: 2},
	)
	for _, cfg := range []string{"sync: [1]\n", "sync: {a: 1}\n", "lock-timeout: abc\n", "lock-timeout: [1s]\n",
		"sync: 5\n", "output: [json]\n", "a: [unclosed\n", "\x00\x01\x02\n", "folds: {x: 5}\n", "folds: {x: {on: 5}}\n"} {
		args := []string{"append", "h-1", "T", "{}"}
		want := 2
		switch {
		case strings.HasPrefix(cfg, "folds"):
			args, want = []string{"fold", "h-1", "--spec", "x"}, 1
		case strings.HasPrefix(cfg, "a:") || strings.HasPrefix(cfg, "\x00"):
			want = 1 // not YAML at all: an error reading the file, not a bad value
		}
		cs = append(cs, hostileCase{name: fmt.Sprintf("config %q", cfg), args: args, config: cfg, want: want})
	}
	return cs
}

func trim(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// TestHostileInput: each bad input is rejected with exit code per CLI.md
// and one line "evt: …" (no stack trace), the store is unchanged (same
// events, verify passes), and nothing is written outside the store: the
// directories around it (with a decoy at ../x, which a group name
// "../../x" would reach from groups/) are unchanged.
func TestHostileInput(t *testing.T) {
	root := t.TempDir()
	store := filepath.Join(root, "sub", "store")
	mustEvt(t, "", "--dir", store, "append", "h-1", "T", `{"ok":1}`)
	mustEvt(t, "", "--dir", store, "group", "create", "good", "--from", "start")
	for _, decoy := range []string{filepath.Join(root, "x"), filepath.Join(root, "sub", "x")} {
		if err := os.MkdirAll(decoy, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(decoy, "keep"), []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgDir := t.TempDir()
	outside := func() map[string]string {
		state := treeState(t, root)
		for p := range state {
			if p == store || strings.HasPrefix(p, store+string(filepath.Separator)) {
				delete(state, p)
			}
		}
		return state
	}
	before := outside()
	events := mustEvt(t, "", "--dir", store, "replay")
	for i, c := range hostileCases() {
		args := []string{"--dir", store}
		if c.config != "" {
			p := filepath.Join(cfgDir, fmt.Sprintf("c%d.yaml", i))
			if err := os.WriteFile(p, []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--config", p)
		}
		r := evt(t, c.stdin, append(args, c.args...)...)
		tally.inputs.Add(1)
		checkErrorLine(t, c.name, r, c.want)
		if d := diffTrees(before, outside()); len(d) > 0 {
			t.Fatalf("%s: files outside the store changed: %v", c.name, d)
		}
		if got := mustEvt(t, "", "--dir", store, "replay"); got != events {
			t.Fatalf("%s: the store's events changed:\n%s", c.name, got)
		}
	}
	verify(t, store)

	// Stream names are not paths: "../../x" is a valid name (CLI.md), and
	// appending to, folding (which saves a snapshot) and reading it
	// writes nothing outside the store.
	for _, name := range []string{"../../x", "/etc/passwd", "../../../../../../tmp/evt-escape"} {
		mustEvt(t, "", "--dir", store, "append", name, "T", `{"a":1}`)
		mustEvt(t, "", "--dir", store, "fold", name)
		mustEvt(t, "", "--dir", store, "tail", name)
		tally.inputs.Add(1)
		if d := diffTrees(before, outside()); len(d) > 0 {
			t.Fatalf("stream %q: files outside the store changed: %v", name, d)
		}
	}
	if _, err := os.Stat("/tmp/evt-escape"); err == nil {
		t.Fatal("a stream name became a path: /tmp/evt-escape exists")
	}
	verify(t, store)
}

// TestFuzzTargets runs every fuzz target of the module for a bounded
// time (the full run only: a short run already replays their seed
// corpora as plain tests in go test ./...).
func TestFuzzTargets(t *testing.T) {
	if !full {
		t.Skip("the full run (EVT_TORTURE=full) fuzzes; go test ./... runs the seed corpora")
	}
	per := 20 * time.Second
	modRoot, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(string(modRoot))
	grep, err := exec.Command("grep", "-rn", "--include=*_test.go", "^func Fuzz", root).Output()
	if err != nil {
		t.Fatal(err)
	}
	fuzzFunc := regexp.MustCompile(`^(.*)/[^/]+_test\.go:\d+:func (Fuzz\w+)\(`)
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(grep)), "\n") {
		m := fuzzFunc.FindStringSubmatch(line)
		if m == nil || strings.Contains(m[1], "/cmd/torture") {
			continue
		}
		pkg, target := m[1], m[2]
		c := exec.Command("go", "test", "-run", "^$", "-fuzz", "^"+target+"$", "-fuzztime", per.String(), ".")
		c.Dir = pkg
		out, err := c.CombinedOutput()
		if err != nil {
			t.Errorf("%s (%s): %v\n%s", target, pkg, err, out)
			continue
		}
		tally.fuzzSecs.Add(int64(per.Seconds()))
		n++
		t.Logf("%s: %s", target, lastLine(string(out)))
	}
	if n == 0 {
		t.Fatal("no fuzz targets found")
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "fuzz: elapsed") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}
