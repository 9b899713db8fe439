package cmd

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/natsjs"
)

// openNatsStore is what cmd/evt-nats registers, for the test binary
// acting as evt.
func openNatsStore(url string, s RemoteSettings, create bool) (log.Store, error) {
	return natsjs.Open(url, natsjs.Options{Create: create, Timeout: s.Timeout, Replicas: s.Replicas,
		IDLookback: s.IDLookback, Creds: s.Creds, Context: s.Context})
}

var scriptStreams atomic.Int64

// scriptStream names the JetStream stream of one script run: each gets a
// fresh store on the shared server.
func scriptStream(string) string {
	return "S" + strings.TrimLeft(time.Now().Format("150405"), "0") + "_" + itoa(scriptStreams.Add(1))
}

func itoa(n int64) string {
	const digits = "0123456789"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{digits[n%10]}, b...)
	}
	return string(b)
}

// localOnly finds the scripts that say they only make sense on the
// local store: a comment line "# local-only: REASON".
var localOnly = regexp.MustCompile(`(?m)^# local-only: \S`)

// natsPending are the scripts that are not local-only but fail on a nats
// store because the work is not done yet, with why. Each is a gap, not a
// difference by design: the list should only shrink.
var natsPending = map[string]string{
	"group_queue_monotonic": "until-acked queues under group resets on a nats store (storetest.KnownGaps GroupQueue)",
}

// embeddedNats starts a JetStream server in the test process on a free
// loopback port, shut down when t ends.
func embeddedNats(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		// evt's events go up to 1 MiB of record; with its headers a
		// message is a little more than the server's default max_payload
		// of 1 MiB, which an operator raises for the same limits as a
		// local store (append_limits.txtar).
		MaxPayload: 2 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// TestScriptNats runs every CLI script that is not local-only against a
// nats store: a nats-server in the test process, listening on a free
// loopback port, with EVT_STORE pointing each script at a stream of its
// own. The scripts' evt processes connect to it over TCP like any client.
func TestScriptNats(t *testing.T) {
	if os.Getenv("EVT_SKIP_NATS_SCRIPTS") != "" {
		t.Skip("EVT_SKIP_NATS_SCRIPTS is set")
	}
	ns := embeddedNats(t)
	dir := filepath.Join("..", "testdata", "script")
	names, err := filepath.Glob(filepath.Join(dir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(filepath.Base(name), ".txtar")
		if why, ok := natsPending[base]; ok {
			t.Logf("not run on a nats store yet: %s: %s", base, why)
			continue
		}
		if !localOnly.Match(data) {
			files = append(files, name)
		}
	}
	testscript.Run(t, scriptParams(dir, files, ns.ClientURL()))
}

// TestExecRemoteMissing: evt without the nats client, for a nats store,
// with no evt-nats beside it or on $PATH, says how to build it.
func TestExecRemoteMissing(t *testing.T) {
	saved := remoteOpener
	remoteOpener = nil
	defer func() { remoteOpener = saved }()
	t.Setenv("PATH", t.TempDir())
	g := &globalOptions{remote: "nats://127.0.0.1:4222"}
	err := g.execRemote()
	if err == nil || !strings.Contains(err.Error(), "needs evt-nats beside evt or on $PATH: build it with") {
		t.Fatalf("execRemote with no evt-nats: %v", err)
	}
}

// inProcessNats starts an embedded nats-server for a test that runs evt
// commands in the test process, which then open nats stores themselves
// (as evt-nats does), until t ends. EVT_SKIP_NATS_SCRIPTS skips the test.
func inProcessNats(t *testing.T) *server.Server {
	t.Helper()
	if os.Getenv("EVT_SKIP_NATS_SCRIPTS") != "" {
		t.Skip("EVT_SKIP_NATS_SCRIPTS is set")
	}
	ns := embeddedNats(t)
	saved := remoteOpener
	RegisterRemote(openNatsStore)
	t.Cleanup(func() { remoteOpener = saved })
	return ns
}

// TestGroupCreatePartitions: group create --partitions N reaches the
// nats store's group (the lanes of per-stream ordering), and without it
// the store's default applies.
func TestGroupCreatePartitions(t *testing.T) {
	ns := inProcessNats(t)
	url := ns.ClientURL() + "/PARTS"
	for _, c := range []struct {
		group string
		args  []string
		want  int
	}{
		{"four", []string{"--partitions", "4"}, 4},
		{"default", nil, natsjs.DefaultPartitions},
	} {
		args := append([]string{"--store", url, "group", "create", c.group, "order-*"}, c.args...)
		if code, _, errOut := runEvt(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		s, err := openNatsStore(url, RemoteSettings{Timeout: 5 * time.Second}, false)
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.OpenGroup(context.Background(), c.group)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Config().Partitions; got != c.want {
			t.Errorf("group %s: %d partitions, want %d", c.group, got, c.want)
		}
		g.Close()
		s.Close()
	}
}
