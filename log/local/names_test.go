package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/evtdev/evt/log"
)

// appendStreams appends one event to each named stream, in one batch.
func appendStreams(t *testing.T, s *Store, names ...string) {
	t.Helper()
	var b log.Batch
	for _, n := range names {
		if err := b.Add(n, "Happened", "", []byte(`{}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
}

func namesOf(t *testing.T, s *Store, prefix, from string, limit int) []string {
	t.Helper()
	got, err := s.StreamNames(prefix, from, limit)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestStreamNames(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	appendStreams(t, s, "order-2", "account-10", "account-1")
	appendStreams(t, s, "account-2", "account-1", "billing")

	r, err := Open(dir, Options{}) // a reader in another process
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tests := []struct {
		prefix, from string
		limit        int
		want         []string
	}{
		{"", "", 100, []string{"account-1", "account-10", "account-2", "billing", "order-2"}},
		{"acc", "", 100, []string{"account-1", "account-10", "account-2"}},
		{"account-1", "", 100, []string{"account-1", "account-10"}},
		{"acc", "", 2, []string{"account-1", "account-10"}},
		{"acc", "account-10\x00", 100, []string{"account-2"}},
		{"", "account.", 100, []string{"billing", "order-2"}}, // past every account-…
		{"zzz", "", 100, []string{}},
	}
	for _, st := range []*Store{s, r} {
		for _, tt := range tests {
			if got := namesOf(t, st, tt.prefix, tt.from, tt.limit); !slices.Equal(got, tt.want) {
				t.Errorf("StreamNames(%q, %q, %d) = %q, want %q", tt.prefix, tt.from, tt.limit, got, tt.want)
			}
		}
	}

	// After a merge the same names come from the sorted file alone, and a
	// reader that had mapped the old one reloads.
	if err := s.mergeNames(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(join(dir, namesLogFile)); len(b) != 0 {
		t.Errorf("names.log after a merge: %q", b)
	}
	appendStreams(t, r2(t, dir), "carrot")
	if got := namesOf(t, r, "", "", 100); !slices.Equal(got, []string{"account-1", "account-10", "account-2", "billing", "carrot", "order-2"}) {
		t.Errorf("after a merge and an append: %q", got)
	}
}

// r2 opens a second writer on dir.
func r2(t *testing.T, dir string) *Store {
	s, err := Open(dir, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStreamNamesTornLine: a writer killed in the middle of a name leaves
// part of a line; the next writer cuts it off before adding its own.
func TestStreamNamesTornLine(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	appendStreams(t, s, "a-1")
	f, err := os.OpenFile(join(dir, namesLogFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("torn-na")
	f.Close()
	appendStreams(t, r2(t, dir), "b-1")
	if got := namesOf(t, s, "", "", 100); !slices.Equal(got, []string{"a-1", "b-1"}) {
		t.Errorf("got %q, want [a-1 b-1]", got)
	}
}

// TestStreamNamesMerge appends enough new streams for writers to merge
// names.log into names several times, and checks that no name is lost.
func TestStreamNamesMerge(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	var want []string
	for batch := range 40 {
		var names []string
		for i := range 1000 {
			names = append(names, fmt.Sprintf("stream-with-a-long-name-%03d-%04d", batch, i))
		}
		appendStreams(t, s, names...)
		want = append(want, names...)
	}
	slices.Sort(want)
	sorted, err := os.ReadFile(join(dir, namesFile))
	if err != nil || len(sorted) == 0 {
		t.Fatalf("no merge happened: %v", err)
	}
	if got := namesOf(t, s, "", "", 1<<20); !slices.Equal(got, want) {
		t.Errorf("%d names, want %d", len(got), len(want))
	}
	if got := namesOf(t, s, "stream-with-a-long-name-017-", "", 5); !slices.Equal(got, want[17000:17005]) {
		t.Errorf("prefix: got %q", got)
	}
}

// TestStreamNamesOldStore: a store made before the index existed reports
// ErrUnsupported until a writer creates a stream, which builds it; repair
// rebuilds it from the heads.
func TestStreamNamesOldStore(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	appendStreams(t, s, "x-1", "x-2")
	s.Close()
	os.Remove(join(dir, namesFile))
	os.Remove(join(dir, namesLogFile))

	s = openTest(t, dir, 0)
	if _, err := s.StreamNames("", "", 10); !errors.Is(err, log.ErrUnsupported) {
		t.Fatalf("no index: %v, want ErrUnsupported", err)
	}
	appendStreams(t, s, "x-1") // no new stream: nothing to build it for
	appendStreams(t, s, "y-1")
	if got := namesOf(t, s, "", "", 10); !slices.Equal(got, []string{"x-1", "x-2", "y-1"}) {
		t.Errorf("built by a writer: %q", got)
	}

	os.WriteFile(join(dir, namesFile), []byte("junk\n"), 0o600)
	os.WriteFile(join(dir, namesLogFile), nil, 0o600)
	if _, err := s.Repair(context.Background(), false, nil); err != nil {
		t.Fatal(err)
	}
	if got := namesOf(t, s, "", "", 10); !slices.Equal(got, []string{"x-1", "x-2", "y-1"}) {
		t.Errorf("after repair: %q", got)
	}
}

func TestFirstLineAtOrAfter(t *testing.T) {
	lines := []string{"a", "ab", "abc", "b", "ba", "c-1", "c-2", "d"}
	b := []byte(strings.Join(lines, "\n") + "\n")
	for _, key := range []string{"", "a", "aa", "ab", "abd", "b", "bz", "c", "c-2", "c.", "d", "e"} {
		i := slices.IndexFunc(lines, func(l string) bool { return l >= key })
		want := len(b)
		if i >= 0 {
			want = len(strings.Join(lines[:i], "\n"))
			if i > 0 {
				want++
			}
		}
		if got := firstLineAtOrAfter(b, key); got != want {
			t.Errorf("key %q: offset %d, want %d", key, got, want)
		}
	}
}
