package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Every --exec handler runs in its own process group (the group of its
// sh), and what kills a handler kills the group: the script and whatever
// it started, not only sh. A handler is killed as a group when it
// outlives its lease, when its member stops, and when its member dies,
// even by SIGKILL: then the member's reaper does it.
//
// The group is killed while sh is exited but not yet reaped (waitid with
// WNOWAIT), so its number cannot have gone to another process group; a
// handler's leftovers (background processes) end with it too.

// reaper is a small sh process per member that kills the running
// handler's process group when the member dies. The member tells it
// which group runs ("PGID" lines, "-" when none) on a pipe only the
// member holds; the pipe's end (the member exited, however) is its cue.
// It is in its own process group, so a Ctrl-C meant for the member does
// not end it first.
type reaper struct {
	cmd *exec.Cmd
	w   *os.File
}

// reaperScript reads the current group from stdin and kills it at EOF.
const reaperScript = `pg=
while read -r l; do
  case $l in -) pg= ;; *) pg=$l ;; esac
done
if [ -n "$pg" ]; then kill -s KILL -- "-$pg" 2>/dev/null; fi`

func startReaper() (*reaper, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	c := exec.Command("sh", "-c", reaperScript)
	c.Stdin = r
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = c.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start the handler reaper: %w", err)
	}
	return &reaper{cmd: c, w: w}, nil
}

// running tells the reaper which process group runs now (0: none). An
// error (the reaper is gone) is ignored: the handler still runs, only
// without the guard against its member's SIGKILL.
func (r *reaper) running(pgid int) {
	line := "-\n"
	if pgid != 0 {
		line = strconv.Itoa(pgid) + "\n"
	}
	r.w.WriteString(line)
}

// stop ends the reaper (no handler runs).
func (r *reaper) stop() {
	r.w.Close()
	r.cmd.Wait()
}

// gatedShell is the sh -c script of a handler: it waits until its fd 3
// (the gate) reaches its end, then runs command. The member closes the
// gate once the reaper knows the handler's process group, so nothing the
// handler starts can outlive a member killed at any instant in between.
// One line, so the handler's own line numbers stay as written.
func gatedShell(command string) string { return "read -r _ <&3; exec 3<&-; " + command }

// runGroup runs c (not started; an sh -c gatedShell script) in its own
// process group until it exits or ctx is done, then kills the group, and
// returns c.Wait's error and whether ctx ended it.
func runGroup(ctx context.Context, c *exec.Cmd, rp *reaper) (err error, killed bool) {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.Setpgid = true
	c.SysProcAttr.Pgid = 0
	gate, open, err := os.Pipe()
	if err != nil {
		return err, false
	}
	c.ExtraFiles = []*os.File{gate}
	err = c.Start()
	gate.Close()
	if err != nil {
		open.Close()
		return err, false
	}
	pid := c.Process.Pid
	rp.running(pid)
	open.Close() // the reaper knows: the handler may start
	exited := make(chan error, 1)
	go func() {
		var info unix.Siginfo
		for {
			// Wait for the exit without reaping: until c.Wait, pid
			// stays this handler's and its group number too.
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if !errors.Is(err, unix.EINTR) {
				exited <- err
				return
			}
		}
	}()
	var werr error
	select {
	case werr = <-exited:
	case <-ctx.Done():
		killed = true
		syscall.Kill(-pid, syscall.SIGKILL)
		werr = <-exited
	}
	if werr == nil {
		syscall.Kill(-pid, syscall.SIGKILL) // what it left running
	}
	rp.running(0)
	return c.Wait(), killed
}
