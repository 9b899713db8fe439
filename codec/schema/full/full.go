// Package full checks the data of events against any JSON Schema, with
// github.com/santhosh-tekuri/jsonschema/v6: the schemas package schema's
// quick validator cannot check, and every schema evt schema set stores
// (a schema is valid when jsonschema compiles it).
//
// The evt binary does not link this package: compiling jsonschema's
// meta-schemas in its package initialisation costs every process about
// 4 ms (GODEBUG=inittrace=1), three times all of evt's own start-up. It
// is linked into cmd/evt-schema, which evt hands a command to when it
// needs it (see cmd's SchemaCompiler).
package full

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/evtdev/evt/codec/schema"
)

// Set is the compiled schemas of a store, by event type. Validate may be
// called from several goroutines at once.
type Set struct {
	byType map[string]*jsonschema.Schema
}

// Compile compiles every schema (JSON text, by event type). A schema
// that is not valid JSON, not a valid schema of its draft (2020-12 unless
// its $schema names another), or that refers to anything outside itself
// is an error naming its type: a schema the store keeps must check every
// event the same way on every machine, so it may not load files or URLs.
func Compile(schemas map[string][]byte) (*Set, error) {
	s := &Set{byType: make(map[string]*jsonschema.Schema, len(schemas))}
	types := make([]string, 0, len(schemas))
	for typ := range schemas {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		sch, err := compile(typ, schemas[typ])
		if err != nil {
			return nil, err
		}
		s.byType[typ] = sch
	}
	return s, nil
}

// Check reports whether text is a schema Compile accepts, as the error
// Compile would give.
func Check(typ string, text []byte) error {
	_, err := compile(typ, text)
	return err
}

func compile(typ string, text []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("the schema of %s is not JSON: %w", typ, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no files, no network
	loc := "evt:///schemas/" + url.PathEscape(typ) + ".json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("the schema of %s: %w", typ, err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("the schema of %s is not a valid JSON Schema: %s", typ, oneLine(err))
	}
	return sch, nil
}

// Has reports whether typ has a schema.
func (s *Set) Has(typ string) bool {
	_, ok := s.byType[typ]
	return ok
}

// Validate checks data (one JSON value) against the schema of typ; a type
// without a schema passes. A mismatch is a *schema.MismatchError.
func (s *Set) Validate(typ string, data []byte) error {
	sch, ok := s.byType[typ]
	if !ok {
		return nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s data: %w", typ, err)
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("%s data: %w", typ, err)
	}
	leaf := firstLeaf(verr)
	return &schema.MismatchError{Type: typ, Pointer: pointer(leaf.InstanceLocation), Reason: leaf.ErrorKind.LocalizedString(english)}
}

var english = message.NewPrinter(language.English)

// firstLeaf is the first most specific cause: the failing keyword deepest
// in the data (for an anyOf, its first branch's), which names the value
// a user has to change.
func firstLeaf(e *jsonschema.ValidationError) *jsonschema.ValidationError {
	best := e
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			if best == nil || len(best.Causes) > 0 || len(e.InstanceLocation) > len(best.InstanceLocation) {
				best = e
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(e)
	return best
}

// pointer is the JSON pointer of a location in the data.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

// oneLine joins a multi-line error of the library into one line.
func oneLine(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), "- "))
	}
	return strings.Join(lines, ": ")
}
