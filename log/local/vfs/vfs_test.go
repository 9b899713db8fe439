package vfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestHelpers(t *testing.T) {
	dir := t.TempDir()
	deep := filepath.Join(dir, "a", "b", "c")
	if err := MkdirAll(OS, deep, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(OS, deep, 0o700); err != nil {
		t.Fatalf("MkdirAll over an existing directory: %v", err)
	}
	data := bytes.Repeat([]byte("evt"), 5000)
	p := filepath.Join(deep, "f")
	if err := WriteFile(OS, p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadFile(OS, p); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadFile: %d bytes, %v; want %d", len(got), err, len(data))
	}
	if err := MkdirAll(OS, p, 0o700); err == nil {
		t.Fatal("MkdirAll over a file succeeded")
	}
	// A link to a directory outside: RemoveAll removes the link, not
	// what it points at.
	outside := filepath.Join(dir, "outside")
	os.Mkdir(outside, 0o700)
	os.WriteFile(filepath.Join(outside, "keep"), nil, 0o600)
	os.Symlink(outside, filepath.Join(deep, "link"))
	if err := RemoveAll(OS, filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Fatalf("RemoveAll followed a link: %v", err)
	}
	if err := RemoveAll(OS, filepath.Join(dir, "a")); err != nil {
		t.Fatalf("RemoveAll of a missing name: %v", err)
	}
	if _, err := OS.OpenFile(filepath.Join(dir, "missing"), os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open of a missing file: %v", err)
	} else if pe := (*fs.PathError)(nil); !errors.As(err, &pe) || pe.Op != "open" {
		t.Fatalf("open error %v is not an *fs.PathError of open", err)
	}
}

// BenchmarkOpenClose compares an open through OS (open(2), no poller)
// with os.OpenFile (which probes the file for the runtime poller): the
// store opens six files per evt append.
func BenchmarkOpenClose(b *testing.B) {
	p := filepath.Join(b.TempDir(), "f")
	os.WriteFile(p, []byte("x"), 0o600)
	b.Run("os.OpenFile", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("vfs.OS", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			f, err := OS.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
}
