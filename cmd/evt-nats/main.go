// Command evt-nats is evt with the NATS JetStream store linked in: the
// same commands, flags and output, for a store named by --store nats://…
// (or tls://…, EVT_STORE, store: in the config file). evt runs it for
// such a store, with the same arguments, input and environment, so that
// the evt binary does not pay for the NATS client at every start; it can
// also be run by itself. An append or import into a nats store that
// keeps JSON Schemas it hands on to evt-schema.
package main

import (
	"os"

	"github.com/evtdev/evt/cmd"
	"github.com/evtdev/evt/cmd/natsopen"
)

func main() {
	cmd.RegisterRemote(natsopen.Open)
	os.Exit(cmd.Main())
}
