package natsjs_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/natsjs"
	"github.com/evtdev/evt/log/storetest"
)

// freePort is a loopback port nothing listens on (for the cluster's
// routes, which each server must know before it starts).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster runs three JetStream servers in the test process, routed
// to each other over loopback, and waits until an R3 stream can be made
// (the meta group has elected its leader).
func startCluster(t testing.TB) []*server.Server {
	t.Helper()
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	var nodes []*server.Server
	for i, p := range ports {
		ns, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), JetStream: true, StoreDir: t.TempDir(),
			Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "evt", Host: "127.0.0.1", Port: p},
			Routes:  routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		t.Cleanup(ns.Shutdown)
		nodes = append(nodes, ns)
	}
	for _, ns := range nodes {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
	}
	nc, err := nats.Connect("", nats.InProcessServer(nodes[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "READY", Subjects: []string{"ready"}, Replicas: 3})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster never took an R3 stream: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nodes
}

// TestConformanceCluster runs the conformance suite on an R3 stream of a
// 3-node cluster, which differs from one server where it matters to evt
// (dedupe runs before the expected-sequence checks; replicas may lag).
// Each case's first handle talks to node 0 and another handle to node 1,
// so every read of another handle's writes goes through another server.
// One cluster for all the cases: it takes seconds to elect its leaders.
func TestConformanceCluster(t *testing.T) {
	// Not yet part of every run: on this 2-core machine several cases
	// time out (see the report of issue 17): reads make an ordered
	// consumer each, which on a cluster is a proposal to the meta leader
	// placed on any replica, and the churn costs leaders their elections.
	if os.Getenv("EVT_NATS_CLUSTER") == "" {
		t.Skip("set EVT_NATS_CLUSTER=1 to run the conformance suite on a 3-node cluster")
	}
	nodes := startCluster(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) (log.Store, func(t *testing.T) log.Store) {
		url := fmt.Sprintf("nats://in-process/R%d", n.Add(1))
		var handles atomic.Int64
		open := func(t *testing.T) log.Store {
			t.Helper()
			node := nodes[handles.Add(1)%int64(len(nodes))]
			s, err := natsjs.Open(url, natsjs.Options{Create: true, Replicas: 3, Dial: []nats.Option{nats.InProcessServer(node)}})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(t), open
	})
}
