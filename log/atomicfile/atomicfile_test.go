package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, tc := range []struct {
		name string
		data string
	}{
		{"new file", "one"},
		{"replace longer", "three three"},
		{"replace shorter", "x"},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Write(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.data {
				t.Fatalf("read %q, %v; want %q", got, err, tc.data)
			}
			if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
				t.Fatalf("temporary file left behind: %v", err)
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, want 0600", st.Mode().Perm())
			}
		})
	}
}

// A failed write leaves the old content and no temporary file.
func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := Write(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory where the temporary file must go makes the open fail.
	if err := os.Mkdir(path+".tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o600); err == nil {
		t.Fatal("write over a blocked temporary succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("content %q after a failed write, want old", got)
	}
}

// A temporary left by a crash is overwritten, not an error.
func TestWriteOverStaleTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := os.WriteFile(path+".tmp", []byte("torn garbage that is long"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("ok"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "ok" {
		t.Fatalf("content %q, want ok", got)
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, data := range []string{"one", "three three", "x"} {
		if err := Replace(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
		if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
			t.Fatalf("temporary file left behind: %v", err)
		}
	}
	if err := os.Mkdir(path+".tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Replace(path, []byte("new"), 0o600); err == nil {
		t.Fatal("replace over a blocked temporary succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "x" {
		t.Fatalf("content %q after a failed replace, want x", got)
	}
}

// TestOneHelper keeps this package the one way evt replaces a file: no
// other code renames a file into place (os.Rename, or the local store's
// fsys.Rename), except the files listed, which swap what is not a byte
// slice written whole: segments, the mmap'd tables rebuilt in place, a
// group directory made or removed whole, a member file that must be
// locked before its name appears, and the store's first files, made
// under the store's own fsync of its directory.
func TestOneHelper(t *testing.T) {
	allowed := map[string]bool{
		"log/atomicfile/atomicfile.go": true,
		"log/atomicfile/fs.go":         true,
		"log/local/compact.go":         true, // a segment's next generation, then SyncDir
		"log/local/hashfile.go":        true, // replaceBy: an mmap'd table, synced
		"log/local/recover.go":         true, // rebuilt tables, synced, then SyncDir
		"log/local/store.go":           true, // a new store's tables and commit file, then SyncDir
		"log/local/group.go":           true, // group directories; Join: a locked member file
	}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "log/local/vfs/") {
			return nil // the seam itself
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "Rename(") && !allowed[rel] {
			t.Errorf("%s renames a file into place by hand: use atomicfile.Write (or Replace)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
