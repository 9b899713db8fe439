package cmd

import "github.com/evtdev/evt/codec/schema/full"

// compileSchemas is the test binary's SchemaCompiler: it is evt-schema
// too (cmd/evt-schema registers the same).
func compileSchemas(schemas map[string][]byte) (SchemaValidator, error) {
	set, err := full.Compile(schemas)
	if err != nil {
		return nil, err
	}
	return set, nil
}
