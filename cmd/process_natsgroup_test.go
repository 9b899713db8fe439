package cmd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestNatsConsumeMemberKilled: three `evt consume GROUP --exec CMD`
// members on a nats store (a nats-server process), the handler writing
// a start line and a done line per event to one file. Member m0 is
// SIGKILLed while its handler runs (with ordering stream it is started
// again as m3, with ordering none it is not). Every event must be
// handled; the only events handled twice are ones m0 had started, among
// the last two it started (with --batch 1 it holds one event, and one
// done but not yet acked: its ack rides on the next lease); with
// ordering stream no event starts before every earlier event of its
// stream is done. The ack wait is 10 minutes, longer than the test
// waits: the killed member's event comes back only because its
// heartbeat lapsed.
func TestNatsConsumeMemberKilled(t *testing.T) {
	skipLongNats(t)
	bins := builtBinaries(t)
	for _, ordering := range []string{"stream", "none"} {
		t.Run(ordering, func(t *testing.T) {
			node := natsCluster(t, bins, 1)[0]
			store := node.url() + "/GROUP"
			consumeMemberKilled(t, bins, store, ordering, ordering == "stream")
		})
	}
}

func consumeMemberKilled(t *testing.T, bins natsBins, store, ordering string, restart bool) {
	const streams, perStream = 12, 20
	const total = streams * perStream
	var in strings.Builder
	for v := 1; v <= perStream; v++ {
		for s := range streams {
			fmt.Fprintf(&in, `{"stream":"job-%d","type":"Queued","data":{"v":%d}}`+"\n", s, v)
		}
	}
	mustEvt(t, bins, []byte(in.String()), "--store", store, "append", "-q")
	mustEvt(t, bins, nil, "--store", store, "group", "create", "workers", "job-*", "--from", "start", "--ordering", ordering, "--ack-wait", "10m")

	seen := filepath.Join(t.TempDir(), "seen")
	// The handler's lines: "S|D STREAM VERSION MEMBER", each one write
	// of an O_APPEND file, so lines of concurrent handlers do not mix.
	handler := fmt.Sprintf(`echo "S $EVT_STREAM $EVT_VERSION $MEMBER" >> %[1]s; sleep 0.02; echo "D $EVT_STREAM $EVT_VERSION $MEMBER" >> %[1]s`, seen)
	start := func(member string) *exec.Cmd {
		c := evtCommand(t, bins, []string{"MEMBER=" + member}, "--store", store, "consume", "workers", "--exec", handler)
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	members := []*exec.Cmd{start("m0"), start("m1"), start("m2")}
	lines := func() []string {
		b, _ := os.ReadFile(seen)
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	done := func() map[string]bool {
		d := map[string]bool{}
		for _, l := range lines() {
			if f := strings.Fields(l); len(f) == 4 && f[0] == "D" {
				d[f[1]+"@"+f[2]] = true
			}
		}
		return d
	}

	// Kill m0 a third of the way in, while its handler runs: its last
	// line is a start.
	waitUntil(t, "a third of the events done, m0 in its handler", func() bool {
		ls := lines()
		if len(ls) < total*2/3 {
			return false
		}
		for i := len(ls) - 1; i >= 0; i-- {
			if f := strings.Fields(ls[i]); len(f) == 4 && f[3] == "m0" {
				return f[0] == "S"
			}
		}
		return false
	})
	members[0].Process.Signal(syscall.SIGKILL)
	members[0].Wait()
	killedAfter := len(lines())
	if restart {
		members = append(members, start("m3"))
	}
	waitUntil(t, "every event done", func() bool { return len(done()) >= total })
	for _, m := range members[1:] {
		m.Process.Signal(syscall.SIGTERM)
		m.Wait()
	}
	checkConsumed(t, lines(), streams, perStream, ordering == "stream")
	t.Logf("m0 killed after %d lines; %d lines in all", killedAfter, len(lines()))
}

// checkConsumed checks the handlers' lines of a run (see
// TestNatsConsumeMemberKilled).
func checkConsumed(t *testing.T, lines []string, streams, perStream int, ordered bool) {
	t.Helper()
	starts := map[string]int{} // event -> times started
	done := map[string]bool{}  // event -> done at least once
	var m0 []string            // events m0 started, in order
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("line %d: %q", i+1, l)
		}
		stream, member := f[1], f[3]
		v, err := strconv.Atoi(f[2])
		if err != nil {
			t.Fatalf("line %d: %q", i+1, l)
		}
		ev := fmt.Sprintf("%s@%d", stream, v)
		switch f[0] {
		case "S":
			starts[ev]++
			if member == "m0" {
				m0 = append(m0, ev)
			}
			if ordered {
				for u := 1; u < v; u++ {
					if prev := fmt.Sprintf("%s@%d", stream, u); !done[prev] {
						t.Fatalf("line %d: %s started by %s before %s was done (per-stream order broken)", i+1, ev, member, prev)
					}
				}
			}
		case "D":
			done[ev] = true
		}
	}
	lastOfM0 := map[string]bool{}
	for _, ev := range m0[max(0, len(m0)-2):] {
		lastOfM0[ev] = true
	}
	dups := 0
	for s := range streams {
		for v := 1; v <= perStream; v++ {
			ev := fmt.Sprintf("job-%d@%d", s, v)
			if !done[ev] {
				t.Fatalf("%s was never handled", ev)
			}
			if starts[ev] > 1 {
				dups++
				if !lastOfM0[ev] || starts[ev] > 2 {
					t.Fatalf("%s handled %d times, and it was not one of the last events the killed member started (%v)", ev, starts[ev], m0[max(0, len(m0)-2):])
				}
			}
		}
	}
	t.Logf("%d events handled by m0 before its kill; %d handled again after it", len(m0), dups)
}
