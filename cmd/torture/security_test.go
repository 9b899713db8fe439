package torture_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOwnerOnlyFiles: every file evt creates in a store is 0600 and every
// directory 0700, whatever the umask. evt asks for owner-only modes and a
// umask can only take bits away, so a wider umask never widens them; that
// is deliberate (an event log may hold personal data): to share a store,
// change the directory's mode or ACLs yourself.
func TestOwnerOnlyFiles(t *testing.T) {
	for _, mask := range []int{0o000, 0o022, 0o077} {
		t.Run(fmt.Sprintf("umask-%03o", mask), func(t *testing.T) {
			old := syscall.Umask(mask) // inherited by the evt processes below
			defer syscall.Umask(old)
			dir := filepath.Join(t.TempDir(), "store")
			mustEvt(t, "", "--dir", dir, "--segment-size", "4096", "append", "p-1", "T", `{"pad":"`+strings.Repeat("x", 3000)+`"}`)
			mustEvt(t, "", "--dir", dir, "--segment-size", "4096", "append", "p-1", "T", `{"pad":"`+strings.Repeat("x", 3000)+`"}`)
			mustEvt(t, "", "--dir", dir, "group", "create", "g", "--from", "start")
			mustEvt(t, "", "--dir", dir, "consume", "g", "--once")
			for i := range 70 { // folds of 64+ events save a snapshot
				mustEvt(t, "", "--dir", dir, "append", "q-1", "T", fmt.Sprintf(`{"i":%d}`, i))
			}
			mustEvt(t, "", "--dir", dir, "fold", "q-1")
			mustEvt(t, "", "--dir", dir, "tail", "--cursor-file", filepath.Join(dir, "..", "cursor"), "-n", "1")
			n := 0
			err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				want := os.FileMode(0o600)
				if fi.IsDir() {
					want = 0o700 | os.ModeDir
				}
				if fi.Mode() != want {
					t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
				}
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, sub := range []string{"groups", "snapshots"} {
				if _, err := os.Stat(filepath.Join(dir, sub)); err != nil {
					t.Errorf("no %s/ to check: %v", sub, err)
				}
			}
			t.Logf("%d files and directories checked", n)
		})
	}
}

// TestDeadLockHolder: a writer SIGKILLed while it holds the append lock
// never blocks the store. While it lives, another append waits and then
// fails naming its PID; once it is dead, the next append goes through at
// once (the kernel drops a flock with its holder) and the dead writer's
// batch is not there.
func TestDeadLockHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustEvt(t, "", "--dir", dir, "append", "l-1", "T", "{}")
	// A big file on stdin: evt takes the lock when the first block is
	// parsed and keeps it while it parses and writes the rest.
	in := filepath.Join(t.TempDir(), "big.ndjson")
	var b strings.Builder
	for i := range 400_000 {
		fmt.Fprintf(&b, `{"stream":"big-%d","type":"T","data":{"i":%d}}`+"\n", i%100, i)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "lock")
	held := func() bool {
		f, err := os.Open(lock)
		if err != nil {
			return false
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return true
		}
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	caught := false
	for attempt := 0; attempt < 5 && !caught; attempt++ {
		f, err := os.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		c := evtCommand(t, "--dir", dir, "append", "-q")
		c.Stdin = f
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if waitFor(10*time.Second, held) {
			// Someone else must wait for it, and be told who holds it.
			r := evt(t, "", "--dir", dir, "--lock-timeout", "300ms", "append", "l-1", "T", "{}")
			if held() {
				caught = true
				checkErrorLine(t, "append while the lock is held", r, 1)
				if !strings.Contains(r.errOut, fmt.Sprintf("pid %d", c.Process.Pid)) {
					t.Errorf("the lock timeout does not name the holder, pid %d: %q", c.Process.Pid, r.errOut)
				}
			}
		}
		c.Process.Signal(syscall.SIGKILL)
		err = c.Wait()
		if caught && !killed(err) {
			caught = false // it finished before the kill: try again
		}
		tally.crashes.Add(1)
	}
	if !caught {
		t.Fatal("never caught the big append holding the lock")
	}
	r := evt(t, "", "--dir", dir, "--lock-timeout", "5s", "append", "l-1", "T", "{}")
	if r.code != 0 {
		t.Fatalf("append after the holder died: exit %d: %s", r.code, r.errOut)
	}
	// An attempt that finished before its kill stored its whole batch;
	// a killed one nothing.
	big := 0
	for _, e := range replayAll(t, dir) {
		if strings.HasPrefix(e.Stream, "big-") {
			big++
		}
	}
	if big%400_000 != 0 {
		t.Fatalf("%d events of the big batches are stored: a killed writer's batch is partly there", big)
	}
	verify(t, dir)
}
