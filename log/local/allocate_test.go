package local

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// TestTablesAllocatedNoSIGBUSOnFullDisk: a regression test for a bug the
// torture suite (cmd/torture, TestFaultNoSpace) found. The tables were
// sparse files; on a full file system the first store to a slot in a
// hole raised SIGBUS, and evt died with a Go stack trace instead of
// "no space left on device". Tables now have their blocks reserved when
// they are made, so every page of the mapping is backed.
func TestTablesAllocatedNoSIGBUSOnFullDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(dir, Options{Create: true, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	var b log.Batch
	if err := b.Add("a-1", "T", "", []byte(`{}`), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, name := range []string{headsFile, idsFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		probe := filepath.Join(dir, "probe")
		f, err := vfs.OS.OpenFile(probe, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		err = allocate(f, 4096)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if pst, _ := os.Stat(probe); pst.Sys().(*syscall.Stat_t).Blocks == 0 {
			t.Skip("this file system does not reserve blocks with fallocate")
		}
		if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks < fi.Size() {
			t.Errorf("%s: %d bytes of %d have blocks: a store to a page in a hole is SIGBUS on a full disk", name, blocks, fi.Size())
		}
	}
}
