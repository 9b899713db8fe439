package cmd

import (
	"bytes"
	"context"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

var updateCompletions = flag.Bool("update-completions", false, "rewrite ../completions/ from the command tree")

// TestCompletionsFresh regenerates the scripts of completions/ and fails
// if a committed one differs.
func TestCompletionsFresh(t *testing.T) {
	const committed = "../completions"
	if *updateCompletions {
		if err := GenerateCompletions(committed); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	if err := GenerateCompletions(tmp); err != nil {
		t.Fatal(err)
	}
	for _, s := range completionScripts {
		want, err := os.ReadFile(filepath.Join(tmp, s.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(committed, s.file))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("completions/%s is missing or stale: run `go test ./cmd -run TestCompletionsFresh -update-completions` (or go generate ./completions) and commit it", s.file)
		}
	}
}

// TestCompletionScriptsMatchCommand checks that completions/ holds what
// `evt completion SHELL` prints, so an installed script and a generated
// one are the same.
func TestCompletionScriptsMatchCommand(t *testing.T) {
	isolate(t)
	tmp := t.TempDir()
	if err := GenerateCompletions(tmp); err != nil {
		t.Fatal(err)
	}
	for shell, file := range map[string]string{"bash": "evt.bash", "zsh": "evt.zsh", "fish": "evt.fish", "powershell": "evt.ps1"} {
		code, out, errOut := runEvt(t, "completion", shell)
		if code != 0 {
			t.Fatalf("evt completion %s: exit %d: %s", shell, code, errOut)
		}
		want, err := os.ReadFile(filepath.Join(tmp, file))
		if err != nil {
			t.Fatal(err)
		}
		if out != string(want) {
			t.Errorf("evt completion %s differs from %s", shell, file)
		}
	}
}

// TestCompletionTables checks that every command and flag that
// registerCompletions names exists, so a renamed one does not silently
// lose its completion.
func TestCompletionTables(t *testing.T) {
	ios, _, _, _ := newTestIOStreams()
	root := newRootCmd(ios)
	c := completer{g: &globalOptions{IO: ios}}
	for _, a := range c.argCompletions() {
		cmd := commandAt(root, a.path)
		if cmd == nil {
			t.Errorf("argCompletions: no command %q", a.path)
			continue
		}
		if cmd.ValidArgsFunction == nil {
			t.Errorf("evt %s: no ValidArgsFunction", a.path)
		}
	}
	for _, f := range c.flagCompletions() {
		cmd := commandAt(root, f.path)
		if cmd == nil {
			t.Errorf("flagCompletions: no command %q", f.path)
			continue
		}
		if cmd.Flag(f.flag) == nil {
			t.Errorf("flagCompletions: evt %s has no --%s", f.path, f.flag)
			continue
		}
		if _, ok := cmd.GetFlagCompletionFunc(f.flag); !ok {
			t.Errorf("evt %s --%s: no completion registered", f.path, f.flag)
		}
	}
}

// complete runs `evt __complete ARGS...` (what the shell scripts run on
// TAB) and returns the candidates, without descriptions, and the directive.
func complete(t *testing.T, args ...string) (candidates []string, directive cobra.ShellCompDirective) {
	t.Helper()
	code, out, errOut := runEvt(t, append([]string{cobra.ShellCompRequestCmd}, args...)...)
	if code != 0 {
		t.Fatalf("evt __complete %q: exit %d: %s", args, code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	last := lines[len(lines)-1]
	d, err := strconv.Atoi(strings.TrimPrefix(last, ":"))
	if !strings.HasPrefix(last, ":") || err != nil {
		t.Fatalf("evt __complete %q: no directive line in %q", args, out)
	}
	for _, l := range lines[:len(lines)-1] {
		name, _, _ := strings.Cut(l, "\t")
		candidates = append(candidates, name)
	}
	return candidates, cobra.ShellCompDirective(d)
}

// completionStore makes a store with a few streams and groups in dir.
func completionStore(t *testing.T, dir string) {
	t.Helper()
	s, err := local.Open(dir, local.Options{Create: true, Sync: local.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b log.Batch
	for _, e := range []struct{ stream, typ string }{
		{"account-1", "Opened"},
		{"account-1", "Deposited"}, // account-1 ends with Deposited: Opened is no stream's last type
		{"account-2", "Opened"},
		{"account-10", "Withdrawn"},
		{"order-1", "Placed"},
	} {
		if err := b.Add(e.stream, e.typ, "", []byte(`{}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = []log.Rule{{Selection: "order-*", MaxAge: time.Hour}, {Selection: "account-1", MaxCount: 5}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"billing", "billing-audit", "shipping"} {
		cfg := log.GroupConfig{Name: name, AckWait: 30 * time.Second, MaxDeliver: 5, Ordering: "stream"}
		if err := s.CreateGroup(context.Background(), cfg, 1); err != nil {
			t.Fatal(err)
		}
	}
}

func TestComplete(t *testing.T) {
	dir := isolate(t)
	store := filepath.Join(dir, "store")
	completionStore(t, store)
	writeFile(t, filepath.Join(dir, "evt.yaml"), `folds:
  balance:
    init: 0
    on: {Deposited: ". + $event.data.amount"}
  Audit:
    on: {}
  bal-by-day:
    on: {}
`)
	const (
		noFile  = cobra.ShellCompDirectiveNoFileComp
		files   = cobra.ShellCompDirectiveDefault
		noSpace = cobra.ShellCompDirectiveNoSpace
	)
	tests := []struct {
		name string
		args []string // after __complete; --dir is added
		want []string
		dir  cobra.ShellCompDirective
	}{
		{"tail streams by prefix", []string{"tail", "acc"}, []string{"account-1", "account-10", "account-2"}, noFile},
		{"tail all streams", []string{"tail", ""}, []string{"account-1", "account-10", "account-2", "order-1"}, noFile},
		{"tail narrower prefix", []string{"tail", "account-1"}, []string{"account-1", "account-10"}, noFile},
		{"no match", []string{"tail", "zzz"}, nil, noFile},
		{"a second selection", []string{"tail", "order-1", ""}, nil, noFile},
		{"replay", []string{"replay", "or"}, []string{"order-1"}, noFile},
		{"fold", []string{"fold", "order"}, []string{"order-1"}, noFile},
		{"streams", []string{"streams", "account-2"}, []string{"account-2"}, noFile},
		{"append stream", []string{"append", "ord"}, []string{"order-1"}, noFile},
		{"append type", []string{"append", "order-1", ""}, []string{"Deposited", "Opened", "Placed", "Withdrawn"}, noFile},
		{"append data", []string{"append", "order-1", "Placed", ""}, nil, noFile},
		{"group create selection", []string{"group", "create", "new", "acc"}, []string{"account-1", "account-10", "account-2"}, noFile},
		{"group create name", []string{"group", "create", ""}, nil, noFile},

		{"consume", []string{"consume", "bil"}, []string{"billing", "billing-audit"}, noFile},
		{"ack group", []string{"ack", ""}, []string{"billing", "billing-audit", "shipping"}, noFile},
		{"ack position", []string{"ack", "billing", ""}, nil, noFile},
		{"group show", []string{"group", "show", "s"}, []string{"shipping"}, noFile},
		{"group reset", []string{"group", "reset", "billing-"}, []string{"billing-audit"}, noFile},
		{"group rm", []string{"group", "rm", ""}, []string{"billing", "billing-audit", "shipping"}, noFile},
		{"group parked", []string{"group", "parked", "ship"}, []string{"shipping"}, noFile},
		{"delete", []string{"delete", "ord"}, []string{"order-1"}, noFile},
		{"truncate", []string{"truncate", "account-1"}, []string{"account-1", "account-10"}, noFile},
		{"retention set", []string{"retention", "set", "acc"}, []string{"account-1", "account-10", "account-2"}, noFile},
		{"retention rm", []string{"retention", "rm", ""}, []string{"account-1", "order-*"}, noFile},
		{"compact --auto", []string{"compact", "--auto", ""}, []string{"on", "off"}, noFile},
		{"group retry", []string{"group", "retry", "b"}, []string{"billing", "billing-audit"}, noFile},
		{"tail --group", []string{"tail", "--group", "bill"}, []string{"billing", "billing-audit"}, noFile},
		{"tail --group=", []string{"tail", "--group="}, []string{"billing", "billing-audit", "shipping"}, noFile},

		{"tail --type", []string{"tail", "--type", ""}, []string{"Deposited", "Opened", "Placed", "Withdrawn"}, noFile},
		{"replay --type prefix", []string{"replay", "--type", "O"}, []string{"Opened"}, noFile},
		{"group create --type", []string{"group", "create", "x", "--type", "W"}, []string{"Withdrawn"}, noFile},

		{"fold --spec", []string{"fold", "order-1", "--spec", ""}, []string{"Audit", "bal-by-day", "balance"}, files},
		{"fold --spec prefix", []string{"fold", "order-1", "--spec", "bal"}, []string{"bal-by-day", "balance"}, files},
		{"fold --spec case", []string{"fold", "order-1", "--spec", "a"}, nil, files},

		{"tail --from", []string{"tail", "--from", ""}, []string{"start", "end", "now", "stored"}, noFile},
		{"replay --to", []string{"replay", "--to", "e"}, []string{"end"}, noFile},
		{"group reset --to", []string{"group", "reset", "billing", "--to", "s"}, []string{"start"}, noFile},
		{"--sync", []string{"tail", "--sync", ""}, []string{"always", "interval", "none"}, noFile},
		// The enums are fixed lists that the shell filters.
		{"--output", []string{"streams", "-o", "t"}, []string{"json", "pretty", "table", "yaml", "template="}, noFile | noSpace},
		{"--expect", []string{"append", "--expect", ""}, []string{"any", "none", "exists"}, noFile},
		{"--ordering", []string{"group", "create", "x", "--ordering", ""}, []string{"stream", "none"}, noFile},
		{"--dir", []string{"tail", "--dir", ""}, nil, cobra.ShellCompDirectiveFilterDirs},
		{"--config", []string{"tail", "--config", ""}, []string{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--dir", store}, tt.args...)
			got, d := complete(t, args...)
			if !slices.Equal(got, tt.want) || d != tt.dir {
				t.Errorf("evt __complete %s\n got %q :%d\nwant %q :%d", strings.Join(args, " "), got, d, tt.want, tt.dir)
			}
		})
	}

	t.Run("store from the environment", func(t *testing.T) {
		t.Setenv("EVT_DIR", store)
		if got, _ := complete(t, "consume", "ship"); !slices.Equal(got, []string{"shipping"}) {
			t.Errorf("got %q, want [shipping]", got)
		}
	})
	t.Run("descriptions", func(t *testing.T) {
		_, out, _ := runEvt(t, cobra.ShellCompRequestCmd, "--dir", store, "tail", "order")
		if !strings.Contains(out, "order-1\tversion 1, last Placed\n") {
			t.Errorf("want a description with version and last type, got %q", out)
		}
	})
}

// TestCompleteReadOnly checks that completing changes nothing in a store.
func TestCompleteReadOnly(t *testing.T) {
	dir := isolate(t)
	store := filepath.Join(dir, "store")
	completionStore(t, store)
	before := snapshotTree(t, store)
	for _, args := range [][]string{
		{"tail", ""}, {"tail", "--type", ""}, {"consume", ""}, {"group", "show", ""}, {"append", "x", ""},
	} {
		complete(t, append([]string{"--dir", store}, args...)...)
	}
	if after := snapshotTree(t, store); after != before {
		t.Errorf("completion changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// snapshotTree lists every file under dir with its size and time.
func snapshotTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b.WriteString(rel + " " + fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().String() + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestCompleteNoStore checks that completion on a missing store offers
// nothing, exits 0 and creates nothing, whether the store comes from
// --dir or is the default one.
func TestCompleteNoStore(t *testing.T) {
	dir := isolate(t)
	missing := filepath.Join(dir, "nope", "store")
	defaultStore := filepath.Join(dir, "data", "evt")
	for _, args := range [][]string{
		{"tail", ""}, {"tail", "acc"}, {"replay", "--type", ""}, {"append", ""}, {"append", "s", ""},
		{"consume", ""}, {"group", "show", ""}, {"tail", "--group", ""}, {"fold", ""}, {"streams", ""},
	} {
		for _, withDir := range []bool{true, false} {
			a := args
			if withDir {
				a = append([]string{"--dir", missing}, args...)
			}
			got, d := complete(t, a...)
			if len(got) != 0 || d != cobra.ShellCompDirectiveNoFileComp {
				t.Errorf("evt __complete %q: got %q :%d, want nothing :%d", a, got, d, cobra.ShellCompDirectiveNoFileComp)
			}
		}
	}
	for _, p := range []string{filepath.Join(dir, "nope"), defaultStore, filepath.Join(dir, "data")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("completion created %s (stat: %v)", p, err)
		}
	}
}

// TestCompleteBrokenConfig checks that a config file that does not parse
// gives no candidates rather than an error in the shell.
func TestCompleteBrokenConfig(t *testing.T) {
	dir := isolate(t)
	store := filepath.Join(dir, "store")
	completionStore(t, store)
	writeFile(t, filepath.Join(dir, "evt.yaml"), "folds: [unclosed\n")
	if got, _ := complete(t, "--dir", store, "fold", "x", "--spec", ""); len(got) != 0 {
		t.Errorf("got %q, want nothing", got)
	}
	code, _, errOut := runEvt(t, cobra.ShellCompRequestCmd, "--dir", store, "tail", "")
	if code != 0 {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
