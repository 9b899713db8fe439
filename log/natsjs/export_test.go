package natsjs

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// inProcessServer runs a JetStream server in the test process, with no
// network listener (clients connect in process), until the test ends.
func inProcessServer(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoLog: true, NoSigs: true})
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

// InProcessServer is inProcessServer for the package's external tests.
var InProcessServer = inProcessServer
