package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

// bigCompletionStore makes a store in dir with one event in each of the
// named streams.
func bigCompletionStore(t testing.TB, dir string, names []string) {
	t.Helper()
	s, err := local.Open(dir, local.Options{Create: true, Sync: local.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for len(names) > 0 {
		n := min(len(names), 100000)
		var b log.Batch
		for _, name := range names[:n] {
			if err := b.Add(name, "Opened", "", []byte(`{}`), nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Append(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		names = names[n:]
	}
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// TestCompleteBounded: on a store of more streams than a shell can show,
// completion offers the next segment of the names, then the next
// character, never more than maxCandidates entries.
func TestCompleteBounded(t *testing.T) {
	dir := isolate(t)
	store := filepath.Join(dir, "store")
	names := append(numbered("account-", 200), numbered("order-", 100)...)
	names = append(names, "audit-1", "auditor", "account")
	bigCompletionStore(t, store, names)
	const (
		noFile  = cobra.ShellCompDirectiveNoFileComp
		noSpace = cobra.ShellCompDirectiveNoSpace
	)
	digits := func(p string) []string {
		var out []string
		for c := '0'; c <= '9'; c++ {
			out = append(out, p+string(c))
		}
		return out
	}
	tests := []struct {
		name string
		arg  string
		want []string
		dir  cobra.ShellCompDirective
	}{
		{"segments", "", []string{"account", "account-", "audit-1", "auditor", "order-"}, noFile | noSpace},
		{"a segment of one stream is the stream", "aud", []string{"audit-1", "auditor"}, noFile},
		{"characters", "account-", digits("account-"), noFile | noSpace},
		{"a stream and its longer names", "account-1", append([]string{"account-1"}, digits("account-1")...), noFile | noSpace},
		{"few enough to list", "account-19", append([]string{"account-19"}, digits("account-19")...), noFile},
		{"one", "order-42", []string{"order-42"}, noFile},
		{"none", "zzz", nil, noFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d := complete(t, "--dir", store, "tail", tt.arg)
			if !slices.Equal(got, tt.want) || d != tt.dir {
				t.Errorf("evt __complete tail %q\n got %q :%d\nwant %q :%d", tt.arg, got, d, tt.want, tt.dir)
			}
			if len(got) > maxCandidates {
				t.Errorf("%d candidates, more than %d", len(got), maxCandidates)
			}
		})
	}

	// A deleted stream stays in the name index but is not offered.
	if code, _, errOut := runEvt(t, "--dir", store, "delete", "order-42"); code != 0 {
		t.Fatalf("delete: exit %d: %s", code, errOut)
	}
	if got, _ := complete(t, "--dir", store, "tail", "order-42"); len(got) != 0 {
		t.Errorf("a deleted stream is offered: %q", got)
	}
}

// TestCompleteWithoutNameIndex: a store made before the name index
// existed still completes, from its heads.
func TestCompleteWithoutNameIndex(t *testing.T) {
	dir := isolate(t)
	store := filepath.Join(dir, "store")
	bigCompletionStore(t, store, numbered("account-", 100))
	os.Remove(filepath.Join(store, "names"))
	os.Remove(filepath.Join(store, "names.log"))
	got, d := complete(t, "--dir", store, "tail", "account-")
	want := []string{"account-0", "account-1", "account-2", "account-3", "account-4", "account-5", "account-6", "account-7", "account-8", "account-9"}
	if !slices.Equal(got, want) || d != cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveNoSpace {
		t.Errorf("got %q :%d, want %q", got, d, want)
	}
}

// TestCompleteNoFileNames: a flag whose value is not a file, and a
// command that takes no file argument, never offer file names; those
// that take files still do.
func TestCompleteNoFileNames(t *testing.T) {
	dir := isolate(t)
	store := filepath.Join(dir, "store")
	completionStore(t, store)
	writeFile(t, filepath.Join(dir, "a-file"), "x")
	for _, args := range [][]string{
		{"fold", "account-1", "--at", ""},
		{"tail", "--count", ""},
		{"tail", "--timeout", ""},
		{"append", "x", "y", "--meta", ""},
		{"group", "create", "g", "--ack-wait", ""},
		{"retention", "set", "x", "--max-age", ""},
		{"--jq", ""},
		{"verify", ""},
		{"version", ""},
		{"group", "ls", ""},
	} {
		got, d := complete(t, append([]string{"--dir", store}, args...)...)
		if len(got) != 0 || d&cobra.ShellCompDirectiveNoFileComp == 0 {
			t.Errorf("evt __complete %q: got %q :%d, want nothing and no files", args, got, d)
		}
	}
	for _, args := range [][]string{
		{"tail", "--cursor-file", ""},
		{"import", ""},
		{"replay", "--exec", ""},
	} {
		if _, d := complete(t, append([]string{"--dir", store}, args...)...); d != cobra.ShellCompDirectiveDefault {
			t.Errorf("evt __complete %q: directive %d, want file names (%d)", args, d, cobra.ShellCompDirectiveDefault)
		}
	}
	if _, d := complete(t, "docs", "--man", ""); d != cobra.ShellCompDirectiveFilterDirs {
		t.Errorf("docs --man: directive %d, want directories", d)
	}
}

// BenchmarkComplete1M times `evt __complete` of stream names and types on
// a store of a million streams (the target: each under 50 ms). The store
// is built once, in a few seconds, under the benchmark's temporary
// directory.
func BenchmarkComplete1M(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "store")
	var names []string
	for i := range 1000000 {
		names = append(names, fmt.Sprintf("%s-%d", []string{"account", "order", "cart", "user"}[i%4], i))
	}
	bigCompletionStore(b, dir, names)
	for _, args := range [][]string{
		{"tail", ""},
		{"tail", "acc"},
		{"tail", "account-"},
		{"tail", "account-9999"},
		{"tail", "account-99996"},
		{"tail", "--type", ""},
	} {
		b.Run(strings.Join(args, " "), func(b *testing.B) {
			argv := append([]string{cobra.ShellCompRequestCmd, "--dir", dir}, args...)
			for b.Loop() {
				ios, _, out, _ := newTestIOStreams()
				if code := run(context.Background(), ios, argv); code != 0 {
					b.Fatalf("exit %d", code)
				}
				if out.Len() == 0 {
					b.Fatal("no output")
				}
			}
		})
	}
}
