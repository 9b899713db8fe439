package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
	"golang.org/x/sys/unix"
)

// appendLock is the exclusive flock on DIR/lock that serialises writers
// across processes. The kernel drops a flock when its holder dies, even by
// SIGKILL, so a crashed writer never blocks the store. The holder writes
// its PID into the file so a waiter that times out can name it.
type appendLock struct {
	name string // for messages: "append lock"
	path string
	f    vfs.File // open for the life of the Store; the flock is per acquisition
	mu   sync.Mutex

	// noPID: the holder writes no PID (verify and repair hold the
	// compaction lock, and verify changes no file).
	noPID bool
}

const lockFile = "lock"

func openLock(fsys vfs.FS, dir string) (*appendLock, error) {
	return openNamedLock(fsys, join(dir, lockFile), "append lock")
}

// openNamedLock opens another lock of the same kind (the compaction lock).
func openNamedLock(fsys vfs.FS, path, name string) (*appendLock, error) {
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &appendLock{name: name, path: path, f: f}, nil
}

// acquire takes the lock, waiting at most timeout, and no longer than ctx
// lasts. The uncontended path is one non-blocking flock and never reads
// ctx. Under contention a goroutine blocks in flock (so the lock is
// handed over as soon as the holder lets go, no polling delay); if the
// timeout or ctx wins, that goroutine releases the lock whenever it does
// get it, so a caller that gave up can never end up holding it.
func (l *appendLock) acquire(ctx context.Context, timeout time.Duration) error {
	l.mu.Lock() // one acquisition per Store at a time; flock is per file description
	fd := int(l.f.Fd())
	err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		l.notePID()
		return nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		l.mu.Unlock()
		return fmt.Errorf("lock %s: %w", l.path, err)
	}
	got := make(chan error, 1)
	var abandoned sync.Mutex
	gaveUp := false
	go func() {
		err := flockRetry(fd)
		abandoned.Lock()
		defer abandoned.Unlock()
		if gaveUp {
			if err == nil {
				unix.Flock(fd, unix.LOCK_UN)
			}
			return
		}
		got <- err
	}()
	giveUp := func() {
		abandoned.Lock()
		gaveUp = true
		abandoned.Unlock()
		select { // the goroutine may have won just before gaveUp was set
		case err := <-got:
			if err == nil {
				unix.Flock(fd, unix.LOCK_UN)
			}
		default:
		}
		// Keep l.mu: the abandoned goroutine may still take and drop the
		// flock on this descriptor; this Store must not append again.
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-got:
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("lock %s: %w", l.path, err)
		}
		l.notePID()
		return nil
	case <-ctx.Done():
		giveUp()
		return fmt.Errorf("stopped waiting for the %s%s: %w", l.name, l.holder(), ctx.Err())
	case <-timer.C:
		giveUp()
		return fmt.Errorf("%w: waited %s for the %s%s", log.ErrLocked, timeout, l.name, l.holder())
	}
}

func flockRetry(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// notePID records the holder. The PID is padded to a fixed width so the
// file never changes size: no metadata update on the append path.
func (l *appendLock) notePID() {
	if l.noPID {
		return
	}
	l.f.WriteAt([]byte(fmt.Sprintf("%-20d\n", os.Getpid())), 0)
}

func (l *appendLock) holder() string {
	b := make([]byte, 32)
	n, _ := l.f.ReadAt(b, 0)
	pid := strings.TrimSpace(string(b[:n]))
	if pid == "" {
		return ""
	}
	return " (held by pid " + pid + ")"
}

func (l *appendLock) release() {
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.mu.Unlock()
}

func (l *appendLock) close() error { return l.f.Close() }
