// Package natsopen opens a nats store with evt's settings: the
// cmd.RemoteOpener the binaries that link the JetStream client
// (cmd/evt-nats, cmd/evt-schema) register.
package natsopen

import (
	"github.com/evtdev/evt/cmd"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/natsjs"
)

// Open opens the nats store at url (a cmd.RemoteOpener).
func Open(url string, s cmd.RemoteSettings, create bool) (log.Store, error) {
	return natsjs.Open(url, natsjs.Options{
		Create:     create,
		Timeout:    s.Timeout,
		Replicas:   s.Replicas,
		IDLookback: s.IDLookback,
		Creds:      s.Creds,
		Context:    s.Context,
	})
}
