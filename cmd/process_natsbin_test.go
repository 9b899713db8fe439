package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The tests in process_natscluster_test.go and process_natsgroup_test.go
// run the binaries users run, each a real process: evt and evt-nats
// built from this module as the README builds them (static,
// CGO_ENABLED=0, as the torture suite builds evt), and nats-server built
// from the github.com/nats-io/nats-server/v2 module of go.mod. They are
// built once per test run, the first time a test asks for them.

// natsBins are the paths of the built binaries.
type natsBins struct {
	evt, server string // evt-nats and evt-schema are beside evt, where evt looks for them
}

var (
	buildOnce sync.Once
	buildDir  string
	builtBins natsBins
	buildErr  error
)

// builtBinaries builds evt, evt-nats, evt-schema and nats-server (once per run) and
// returns their paths.
func builtBinaries(t *testing.T) natsBins {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "evt-natsbin-")
		if buildErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{
			{"evt", "github.com/evtdev/evt"},
			{"evt-nats", "github.com/evtdev/evt/cmd/evt-nats"},
			{"evt-schema", "github.com/evtdev/evt/cmd/evt-schema"},
			{"nats-server", "github.com/nats-io/nats-server/v2"},
		} {
			c := exec.Command("go", "build", "-o", filepath.Join(buildDir, b.out), b.pkg)
			c.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := c.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
		builtBins = natsBins{evt: filepath.Join(buildDir, "evt"), server: filepath.Join(buildDir, "nats-server")}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBins
}

// removeBuiltBinaries removes what builtBinaries built (TestMain, after
// the tests).
func removeBuiltBinaries() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// skipLongNats skips a long real-process nats test under -short or
// EVT_SKIP_NATS_SCRIPTS, as the other nats process tests are skipped.
func skipLongNats(t *testing.T) {
	t.Helper()
	if testing.Short() || os.Getenv("EVT_SKIP_NATS_SCRIPTS") != "" {
		t.Skip("-short or EVT_SKIP_NATS_SCRIPTS")
	}
}

// evtResult is how one evt process ended.
type evtResult struct {
	code        int
	out, errOut string
}

// runBuiltEvt runs the built evt once with stdin (may be nil) and extra
// environment variables, in an empty directory with no EVT_ variables
// and no config file, and waits for it.
func runBuiltEvt(t *testing.T, bins natsBins, stdin []byte, env []string, args ...string) evtResult {
	t.Helper()
	c := evtCommand(t, bins, env, args...)
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("evt %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return evtResult{code, out.String(), errOut.String()}
}

// evtCommand is the built evt with args, not yet started (see runBuiltEvt).
func evtCommand(t *testing.T, bins natsBins, env []string, args ...string) *exec.Cmd {
	c := exec.Command(bins.evt, args...)
	c.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVT_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(c.Env, "XDG_CONFIG_HOME="+c.Dir)
	c.Env = append(c.Env, env...)
	return c
}

// mustEvt is runBuiltEvt that fails the test unless evt exits 0.
func mustEvt(t *testing.T, bins natsBins, stdin []byte, args ...string) string {
	t.Helper()
	r := runBuiltEvt(t, bins, stdin, nil, args...)
	if r.code != 0 {
		t.Fatalf("evt %s: exit %d: %s", strings.Join(args, " "), r.code, r.errOut)
	}
	return r.out
}

// natsNode is one nats-server process of a test cluster (or a single
// server), restartable on the same ports and store directory.
type natsNode struct {
	name                    string
	port, clusterPort, http int
	dir, conf               string
	cmd                     *exec.Cmd
}

// url is the node's client URL.
func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// natsCluster starts size nats-server processes (a JetStream cluster
// when size > 1) and waits until JetStream answers on every node.
func natsCluster(t *testing.T, bins natsBins, size int) []*natsNode {
	t.Helper()
	nodes := make([]*natsNode, size)
	for i := range nodes {
		nodes[i] = &natsNode{name: fmt.Sprintf("n%d", i+1), port: freePort(t), clusterPort: freePort(t), http: freePort(t), dir: t.TempDir()}
	}
	var routes []string
	for _, n := range nodes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", n.clusterPort))
	}
	for _, n := range nodes {
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\njetstream { store_dir: %q }\n", n.name, n.port, n.http, filepath.Join(n.dir, "js"))
		if size > 1 {
			conf += fmt.Sprintf("cluster { name: evt, listen: 127.0.0.1:%d, routes: [%s] }\n", n.clusterPort, strings.Join(routes, ", "))
		}
		n.conf = filepath.Join(n.dir, "nats.conf")
		if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		n.start(t, bins)
	}
	for _, n := range nodes {
		waitJetStream(t, n.url())
	}
	return nodes
}

// start runs the node's nats-server process and waits until its client
// port takes connections.
func (n *natsNode) start(t *testing.T, bins natsBins) {
	t.Helper()
	c := exec.Command(bins.server, "-c", n.conf)
	c.Stdout, c.Stderr = io.Discard, io.Discard
	if os.Getenv("EVT_NATS_LOG") != "" {
		c.Stderr = os.Stderr
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd = c
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	for i := 0; ; i++ {
		conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(n.port))
		if err == nil {
			conn.Close()
			return
		}
		if i > 1000 {
			t.Fatalf("nats-server %s on port %d: %v", n.name, n.port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill SIGKILLs the node's process and waits for it to be gone.
func (n *natsNode) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
}

// waitJetStream waits until JetStream answers through url (on a cluster:
// a meta leader is elected).
func waitJetStream(t *testing.T, url string) {
	t.Helper()
	js := jetStreamOf(t, url)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream through %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jetStreamOf is a JetStream client of its own connection to url, closed
// when the test ends.
func jetStreamOf(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// streamInfo is the JetStream stream's info, asked through url.
func streamInfo(t *testing.T, url, stream string) *jetstream.StreamInfo {
	t.Helper()
	js := jetStreamOf(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s through %s: %v", stream, url, err)
	}
	return s.CachedInfo()
}

// localState is the state of stream in the node's own copy, from its
// monitoring endpoint (/jsz), not from the stream's leader: what this
// replica has stored.
func (n *natsNode) localState(stream string) (server.StreamState, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz?streams=true", n.http))
	if err != nil {
		return server.StreamState{}, err
	}
	defer resp.Body.Close()
	var info server.JSInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return server.StreamState{}, err
	}
	for _, a := range info.AccountDetails {
		for _, s := range a.Streams {
			if s.Name == stream {
				return s.State, nil
			}
		}
	}
	return server.StreamState{}, fmt.Errorf("node %s has no stream %s", n.name, stream)
}

// exported is one line of `evt export`.
type exported struct {
	Position uint64          `json:"position"`
	Stream   string          `json:"stream"`
	Version  uint64          `json:"version"`
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Data     json.RawMessage `json:"data"`
}

// parseExport reads `evt export` (or replay/tail -o json) output.
func parseExport(t *testing.T, out string) []exported {
	t.Helper()
	var evs []exported
	for line := range strings.Lines(out) {
		var e exported
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("evt printed %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}
