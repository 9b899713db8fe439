package local

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evtdev/evt/log"
)

// groupChild is a member of group G of the store in EVT_GROUP_DIR, run
// as a separate process by the test binary (see TestMain). With
// EVT_GROUP_CHILD=slowjoin it prints "joining" once its member file is
// created, waits for a line on stdin before it locks it, then leases one
// event and prints "leased POSITION", and waits for stdin to close.
func groupChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "group child:", err)
		return 1
	}
	s, err := Open(os.Getenv("EVT_GROUP_DIR"), Options{})
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	g, err := s.openGroup("G")
	if err != nil {
		return fail(err)
	}
	defer g.Close()
	in := bufio.NewReader(os.Stdin)
	joinPause = func() {
		fmt.Println("joining")
		in.ReadString('\n')
	}
	m, err := g.join(log.MemberOptions{})
	if err != nil {
		return fail(err)
	}
	ds, _, err := m.Lease(context.Background(), 1, true)
	if err != nil {
		return fail(err)
	}
	for _, d := range ds {
		fmt.Println("leased", d.Event.Position)
	}
	in.ReadString('\n') // until the parent is done
	return 0
}

// TestGroupSlowJoiner: a member that is slow to lock its member file (a
// preempted process) is not taken for dead by a concurrent look at the
// members (evt group show, another member's lease): once it joined and
// leased an event, that event is not handed to anyone else.
func TestGroupSlowJoiner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(dir, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b log.Batch
	b.Add("s-1", "T", "", []byte(`{}`), nil)
	if _, err := s.Append(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(context.Background(), log.GroupConfig{Name: "G", AckWait: time.Hour, MaxDeliver: 5, Ordering: "stream"}, 1); err != nil {
		t.Fatal(err)
	}
	g, err := s.openGroup("G")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(exe)
	c.Env = append(os.Environ(), "EVT_GROUP_CHILD=slowjoin", "EVT_GROUP_DIR="+dir)
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Wait()
	defer stdin.Close()
	out := bufio.NewScanner(stdout)
	expect := func(want string) string {
		t.Helper()
		if !out.Scan() {
			t.Fatalf("the child exited before printing %q: %s", want, stderr.String())
		}
		if !strings.HasPrefix(out.Text(), want) {
			t.Fatalf("the child printed %q, want %q", out.Text(), want)
		}
		return out.Text()
	}

	expect("joining")
	// A look at the members while the child is between creating and
	// locking its file.
	if m := g.Members(); len(m) != 0 {
		t.Errorf("members while the only one joins: %v, want none yet", m)
	}
	fmt.Fprintln(stdin)
	expect("leased 1")
	if m := g.Members(); len(m) != 1 || m[0] != fmt.Sprint(c.Process.Pid) {
		t.Errorf("members once it joined: %v, want [%d]", g.Members(), c.Process.Pid)
	}
	// The child holds position 1: nobody else gets it.
	m, err := g.join(log.MemberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ds, _, err := m.Lease(context.Background(), 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 0 {
		t.Errorf("position %d was handed out while the live child holds it", ds[0].Event.Position)
	}
}
