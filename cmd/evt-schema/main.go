// Command evt-schema is evt with JSON Schema checking linked in
// (github.com/santhosh-tekuri/jsonschema/v6, through codec/schema/full)
// and the NATS JetStream store: the same commands, flags and output. evt
// (and evt-nats) run it, with the same arguments, input and environment,
// for evt schema set and for an append or import into a store that keeps
// a schema outside the quick subset of package codec/schema, so that the
// evt binary does not pay jsonschema's start-up (about 4 ms, compiling its
// meta-schemas) in every process.
package main

import (
	"os"

	"github.com/evtdev/evt/cmd"
	"github.com/evtdev/evt/cmd/natsopen"
	"github.com/evtdev/evt/codec/schema/full"
)

func main() {
	cmd.RegisterRemote(natsopen.Open)
	cmd.RegisterSchemaCompiler(compile)
	os.Exit(cmd.Main())
}

func compile(schemas map[string][]byte) (cmd.SchemaValidator, error) {
	set, err := full.Compile(schemas)
	if err != nil {
		return nil, err
	}
	return set, nil
}
