package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/codec/schema"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

// A schema of the common subset package codec/schema knows (type, enum,
// const, bounds, lengths, properties, required, additionalProperties,
// items) is checked in this process, on the data's text. Any other is
// compiled and checked by a SchemaCompiler, which only a second binary
// registers: cmd/evt-schema links github.com/santhosh-tekuri/jsonschema/v6,
// whose package initialisation (compiling its meta-schemas) costs every
// process about 4 ms, three times all of evt's own start-up. evt hands a
// command that needs it (schema set, which checks every schema with
// jsonschema; an append or import into a store with a schema outside the
// subset) to evt-schema, the way it hands a nats store's commands to
// evt-nats. A store without schemas costs an append one stat (or, on a
// nats store, a flag the open read) and nothing else.

// SchemaValidator checks the data of events against a store's schemas.
type SchemaValidator interface {
	// Validate returns nil when data (one JSON value) matches the
	// schema of typ, or typ has none; otherwise an error of one line
	// that names the type, the JSON pointer of the value that fails and
	// the schema's reason. It may be called from several goroutines at
	// once.
	Validate(typ string, data []byte) error
}

// SchemaCompiler compiles a store's schemas (their text, by event type)
// into a validator; an error names the schema that does not compile.
type SchemaCompiler func(schemas map[string][]byte) (SchemaValidator, error)

var schemaCompiler SchemaCompiler

// RegisterSchemaCompiler makes the process check schemas with c (the
// evt-schema binary calls it before Main).
func RegisterSchemaCompiler(c SchemaCompiler) { schemaCompiler = c }

// schemaHelper is the binary evt hands commands that check schemas to.
const schemaHelper = "evt-schema"

// needSchemas hands the command line to evt-schema when this binary
// cannot compile schemas; it returns only on failure.
func (g *globalOptions) needSchemas() error {
	if schemaCompiler != nil {
		return nil
	}
	return execHelper(schemaHelper, fmt.Sprintf("the store %s has JSON Schemas, which need %s", g.storeLocation(), schemaHelper),
		"./cmd/evt-schema")
}

// appendValidator returns the validator of the store's schemas for an
// append or import, and the store when it had to open it (the caller
// uses it and closes it); nil, nil when the store keeps no schema. It
// runs before the command reads any input, so that it can hand the
// command to evt-schema when a schema is outside the quick subset. The local store is asked with one stat, before
// it is opened; a nats store is opened (without creating it) and asked
// for the flag its open read.
func (g *globalOptions) appendValidator() (SchemaValidator, log.Store, error) {
	var s log.Store
	if g.remote == "" {
		if !local.HasSchemas(g.StoreDir()) {
			return nil, nil, nil
		}
	} else {
		var err error
		s, err = g.openRemote(false)
		if errors.Is(err, log.ErrNoStore) {
			return nil, nil, nil // the append creates it, with no schema
		}
		if err != nil {
			return nil, nil, err
		}
		has, err := s.HasSchemas()
		if err != nil || !has {
			return nil, s, err
		}
	}
	if s == nil {
		var err error
		if s, err = g.openStore(true); err != nil {
			return nil, nil, err
		}
	}
	schemas, err := s.Schemas()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	if len(schemas) == 0 {
		return nil, s, nil
	}
	v := &schemaSet{quick: map[string]*schema.Schema{}}
	rest := map[string][]byte{}
	for typ, text := range schemas {
		q, err := schema.Compile(text)
		if err != nil {
			rest[typ] = text // outside the subset: jsonschema checks it
			continue
		}
		v.quick[typ] = q
	}
	if len(rest) == 0 {
		return v, s, nil
	}
	if schemaCompiler == nil {
		s.Close()
		return nil, nil, g.needSchemas()
	}
	if v.rest, err = schemaCompiler(rest); err != nil {
		s.Close()
		return nil, nil, err
	}
	return v, s, nil
}

// schemaSet checks each type of the quick subset in this process
// (package codec/schema) and the others with the registered compiler's
// validator: evt runs evt-schema only for a schema outside the subset,
// and both binaries give the same reasons for one inside it.
type schemaSet struct {
	quick map[string]*schema.Schema
	rest  SchemaValidator // nil: every schema is quick
}

func (v *schemaSet) Validate(typ string, data []byte) error {
	if q, ok := v.quick[typ]; ok {
		return q.Validate(typ, data)
	}
	if v.rest != nil {
		return v.rest.Validate(typ, data)
	}
	return nil
}

func newSchemaCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Keep a JSON Schema for the data of an event type",
		Long: `A store can keep a JSON Schema (draft 2020-12, or the draft its $schema
names) for the data of each event type. Appends and imports check the data
of every event of that type; one that does not match fails the whole
batch, naming its line, the JSON pointer of the value that fails and the
schema's reason, and nothing is written (exit 1):

  evt: line 3: Deposited data does not match its schema: /amount:
  got string, want number

A schema must be whole in itself: a $ref to a file or a URL is refused.
An append checks against the schemas it read when it began. Checking
schemas runs in evt-schema (built beside evt), which evt runs for schema
set and for appends and imports into a store that keeps a schema.`,
	}
	cmd.AddCommand(newSchemaSetCmd(g), newSchemaLsCmd(g), newSchemaShowCmd(g), newSchemaRmCmd(g))
	return cmd
}

func newSchemaSetCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "set TYPE FILE",
		Short: "Set the JSON Schema of an event type",
		Long: `Set the JSON Schema of TYPE's data from FILE (- for stdin), replacing the
one it had. The schema is compiled first: one that is not valid JSON or
not a valid schema is refused, and the store keeps what it had. Events
already stored are not checked.`,
		Example: `  evt schema set Deposited deposited.schema.json
  echo '{"type":"object","required":["amount"]}' | evt schema set Deposited -`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := codec.ValidateType(args[0]); err != nil {
				return usageErrorf("%w", err)
			}
			if err := g.needSchemas(); err != nil {
				return err
			}
			return runSchemaSet(g, args[0], args[1])
		},
	}
}

func runSchemaSet(g *globalOptions, typ, path string) error {
	var text []byte
	var err error
	if path == "-" {
		text, err = io.ReadAll(io.LimitReader(g.IO.In, codec.MaxRecordSize+1))
	} else {
		text, err = readFileLimited(path, codec.MaxRecordSize+1)
	}
	if err != nil {
		return err
	}
	if len(text) > codec.MaxRecordSize {
		return fmt.Errorf("%s: the schema is larger than 1 MiB", path)
	}
	compact, err := codec.AppendCompact(nil, text)
	if err != nil {
		return fmt.Errorf("the schema of %s is not JSON: %w", typ, err)
	}
	if _, err := schemaCompiler(map[string][]byte{typ: compact}); err != nil {
		return err
	}
	s, err := g.openStore(true)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.SetSchema(typ, compact)
}

func newSchemaLsCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the event types that have a schema",
		Long: `List the event types that have a JSON Schema, with the schema's title when
it has one. -o json prints {"type","title"} per line; evt schema show
TYPE prints a schema.`,
		Example: `  evt schema ls
  evt schema ls -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			schemas, err := readSchemas(g)
			if err != nil {
				return err
			}
			types := make([]string, 0, len(schemas))
			for typ := range schemas {
				types = append(types, typ)
			}
			sort.Strings(types)
			for _, typ := range types {
				var doc struct {
					Title string `json:"title"`
				}
				_ = json.Unmarshal(schemas[typ], &doc) // a schema may be true or false
				title := doc.Title
				if title == "" {
					title = "-"
				}
				if err := p.Row([]output.Field{
					{Key: "type", Value: typ},
					{Key: "title", Value: doc.Title, Text: title},
				}); err != nil {
					return err
				}
			}
			return p.Flush()
		},
	}
}

func newSchemaShowCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "show TYPE",
		Short:   "Print the JSON Schema of an event type",
		Long:    `Print the JSON Schema of TYPE, indented. A type without one exits 4.`,
		Example: `  evt schema show Deposited`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			schemas, err := readSchemas(g)
			if err != nil {
				return err
			}
			text, ok := schemas[args[0]]
			if !ok {
				return fmt.Errorf("%w: %s has no schema", log.ErrNotFound, args[0])
			}
			var out bytes.Buffer
			if err := json.Indent(&out, text, "", "  "); err != nil {
				return err
			}
			out.WriteByte('\n')
			_, err = g.IO.Out.Write(out.Bytes())
			return err
		},
	}
}

func newSchemaRmCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rm TYPE",
		Short: "Remove the JSON Schema of an event type",
		Long: `Remove the JSON Schema of TYPE: its events are no longer checked. A
type without one exits 4.`,
		Example: `  evt schema rm Deposited`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openExisting(g)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.RemoveSchema(args[0])
		},
	}
}

// readSchemas reads the store's schemas; a store that does not exist has
// none.
func readSchemas(g *globalOptions) (map[string][]byte, error) {
	if !g.storeExists() {
		return nil, nil
	}
	s, err := g.openStore(false)
	if errors.Is(err, log.ErrNoStore) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Schemas()
}
