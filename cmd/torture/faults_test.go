package torture_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// I/O faults. Each fault must give a clear one-line error and a non-zero
// exit, and leave the store intact: evt verify passes, every event
// acknowledged before is readable, nothing the failed command tried is
// half there, and appends work again once the fault is gone.
//
// ENOSPC and a read-only store are real: a small tmpfs that is filled up,
// or remounted read-only (we run as root, so chmod would not stop us).
// Injected faults (EIO or ENOSPC on any write, a failed fsync, a short
// write, a torn rename, a crash at any operation, for every writer) run
// in process through the store's file-system seam: TestFaults in
// log/local.

// faultStore is a store with acknowledged events to check after faults.
type faultStore struct {
	t    *testing.T
	dir  string
	acks map[string]acked
	n    int
}

func newFaultStore(t *testing.T, dir string) *faultStore {
	fs := &faultStore{t: t, dir: dir, acks: map[string]acked{}}
	for range 5 {
		fs.mustAppend()
	}
	return fs
}

// appendArgs is the next single append, with an id so retries are safe.
func (fs *faultStore) appendArgs() ([]string, string) {
	fs.n++
	id := fmt.Sprintf("f%d", fs.n)
	return []string{"--dir", fs.dir, "append", fmt.Sprintf("fault-%d", fs.n%3), "Written", fmt.Sprintf(`{"n":%d}`, fs.n), "--id", id}, id
}

func (fs *faultStore) record(out, id string) {
	as, err := parseAcks(out, []string{id})
	if err != nil {
		fs.t.Fatal(err)
	}
	fs.acks[as[0].stream+"\x00"+id] = as[0]
}

func (fs *faultStore) mustAppend() {
	args, id := fs.appendArgs()
	fs.record(mustEvt(fs.t, "", args...), id)
}

// check: verify passes and every acknowledged event is there once; ids
// of failed appends (tried) may be there only if the failure came after
// the data was synced (then the outcome was unknown to the client, as
// with a timeout, and a retry by id is a no-op).
func (fs *faultStore) check(mayExist ...string) {
	fs.t.Helper()
	verify(fs.t, fs.dir)
	evs := replayAll(fs.t, fs.dir)
	checkAcked(fs.t, evs, fs.acks)
	allowed := map[string]bool{}
	for _, id := range mayExist {
		allowed[id] = true
	}
	for _, e := range evs {
		if _, ok := fs.acks[e.Stream+"\x00"+e.ID]; !ok && !allowed[e.ID] {
			fs.t.Errorf("event %s at %d was never acknowledged", e.ID, e.Position)
		}
	}
}

// mountTmpfs mounts a tmpfs of size at a new directory, or skips.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the file system is full and returns it.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return p
		}
	}
}

func TestFaultNoSpace(t *testing.T) {
	mnt := mountTmpfs(t, "4m")
	fs := newFaultStore(t, filepath.Join(mnt, "store"))
	filler := fill(t, mnt)
	// An append may still fit in the pages the files already have; one
	// that does not must fail cleanly. So: single appends until one
	// fails, then one to a new stream (its table slot may need a page
	// the file system no longer has), then a batch larger than any
	// free page.
	big := strings.Repeat(`{"stream":"fault-big","type":"Big","data":{"pad":"`+strings.Repeat("z", 900)+`"}}`+"\n", 2000)
	failed := false
	for i := 0; i < 500 && !failed; i++ {
		args, id := fs.appendArgs()
		r := evt(t, "", args...)
		if r.code == 0 {
			fs.record(r.out, id)
			continue
		}
		failed = true
		tally.faults.Add(1)
		checkErrorLine(t, "ENOSPC, existing stream", r, 1)
		if !strings.Contains(r.errOut, "no space left") {
			t.Errorf("ENOSPC: the message does not say the disk is full: %q", r.errOut)
		}
		if strings.Count(r.errOut, ".seg") > 1 {
			t.Errorf("ENOSPC: the message names the segment twice: %q", r.errOut)
		}
		fs.check()
	}
	if !failed {
		t.Fatal("500 appends fitted on a full file system")
	}
	if r := evt(t, "", "--dir", fs.dir, "append", "brand-new-1", "Written", "{}", "--id", "nospace-new"); r.code == 0 {
		fs.record(r.out, "nospace-new")
	} else {
		tally.faults.Add(1)
		checkErrorLine(t, "ENOSPC, new stream", r, 1)
	}
	fs.check()
	r := evt(t, big, "--dir", fs.dir, "append")
	tally.faults.Add(1)
	checkErrorLine(t, "ENOSPC, large batch", r, 1)
	fs.check()
	os.Remove(filler)
	for range 3 {
		fs.mustAppend()
	}
	fs.check()
}

func TestFaultReadOnly(t *testing.T) {
	mnt := mountTmpfs(t, "8m")
	fs := newFaultStore(t, filepath.Join(mnt, "store"))
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot remount read-only: %v: %s", err, out)
	}
	probe := filepath.Join(mnt, "probe")
	if err := os.WriteFile(probe, nil, 0o600); err == nil {
		os.Remove(probe)
		t.Skip("a read-only remount does not stop writes here")
	}
	args, _ := fs.appendArgs()
	r := evt(t, "", args...)
	tally.faults.Add(1)
	checkErrorLine(t, "read-only store, append", r, 1)
	// Reading needs no write access.
	evs := replayAll(t, fs.dir)
	checkAcked(t, evs, fs.acks)
	verify(t, fs.dir)
	if out, err := exec.Command("mount", "-o", "remount,rw", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount rw: %v: %s", err, out)
	}
	fs.mustAppend()
	fs.check()
}
