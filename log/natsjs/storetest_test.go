package natsjs_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/natsjs"
	"github.com/evtdev/evt/log/storetest"
)

// startServer runs a JetStream server inside the test process.
var startServer = natsjs.InProcessServer

// TestConformance runs the store conformance suite against one embedded
// server; each case gets a JetStream stream of its own (a store named
// S<n>), and another handle is a second connection, as a second process
// would make.
func TestConformance(t *testing.T) {
	ns := startServer(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) (log.Store, func(t *testing.T) log.Store) {
		url := fmt.Sprintf("nats://in-process/S%d", n.Add(1))
		open := func(t *testing.T) log.Store {
			t.Helper()
			s, err := natsjs.Open(url, natsjs.Options{Create: true, Dial: []nats.Option{nats.InProcessServer(ns)}})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(t), open
	})
}
