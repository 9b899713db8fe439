// Command evt-nats is evt with the NATS JetStream store linked in: the
// same commands, flags and output, for a store named by --store nats://…
// (or tls://…, EVT_STORE, store: in the config file). evt runs it for
// such a store, with the same arguments, input and environment, so that
// the evt binary does not pay for the NATS client at every start; it can
// also be run by itself.
package main

import (
	"os"

	"github.com/evtdev/evt/cmd"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/natsjs"
)

func main() {
	cmd.RegisterRemote(open)
	os.Exit(cmd.Main())
}

// open opens a nats store with evt's settings.
func open(url string, s cmd.RemoteSettings, create bool) (log.Store, error) {
	return natsjs.Open(url, natsjs.Options{
		Create:     create,
		Timeout:    s.Timeout,
		Replicas:   s.Replicas,
		IDLookback: s.IDLookback,
		Creds:      s.Creds,
		Context:    s.Context,
	})
}
