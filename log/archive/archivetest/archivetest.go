// Package archivetest reads archive directories for the tests of the
// stores that write them (log/local, log/natsjs): what they check after
// a crash and a retry is the same promise.
package archivetest

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evtdev/evt/log/archive"
)

// Read reads every complete archive file of dir: each envelope (its
// line) by position, as many times as files hold it. Every file must be
// compressed, named after its first and last position, and hold only
// envelopes. A temporary file is what a crash leaves (the next
// compaction removes it); with strict (after a compaction that ran to
// its end) it is an error.
func Read(t testing.TB, dir string, strict bool) map[uint64][]string {
	t.Helper()
	got := map[uint64][]string{}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return got
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), archive.TempPrefix) {
			if strict {
				t.Errorf("a temporary archive file was left: %s", e.Name())
			}
			continue
		}
		lo, hi, ok := archive.ParseName(e.Name())
		if !ok {
			t.Fatalf("unexpected file in the archive: %s", e.Name())
		}
		readFile(t, filepath.Join(dir, e.Name()), lo, hi, got)
	}
	return got
}

func readFile(t testing.TB, path string, lo, hi uint64, got map[uint64][]string) {
	t.Helper()
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, compressed, closeR, err := archive.Decompress(f)
	if err != nil || !compressed {
		t.Fatalf("%s: not compressed (%v)", name, err)
	}
	defer closeR()
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 2<<20)
	first := true
	var last uint64
	for sc.Scan() {
		var env struct{ Position uint64 }
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if first && env.Position != lo {
			t.Errorf("%s starts at position %d", name, env.Position)
		}
		first, last = false, env.Position
		got[env.Position] = append(got[env.Position], sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if last != hi {
		t.Errorf("%s ends at position %d", name, last)
	}
}

// Once checks what Read found of the event at position pos, whose
// envelope is want: archived at most once, and then byte for byte.
func Once(t testing.TB, pos uint64, want string, got []string) {
	t.Helper()
	if len(got) > 1 {
		t.Errorf("position %d archived %d times", pos, len(got))
	}
	if len(got) == 1 && got[0] != want {
		t.Errorf("position %d archived as %s, was %s", pos, got[0], want)
	}
}
