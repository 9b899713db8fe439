package cmd

import "github.com/evtdev/evt/codec/schema"

// compileSchemas is the test binary's SchemaCompiler: it is evt-schema
// too (cmd/evt-schema registers the same).
func compileSchemas(schemas map[string][]byte) (SchemaValidator, error) {
	set, err := schema.Compile(schemas)
	if err != nil {
		return nil, err
	}
	return set, nil
}
