package natsjs

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/evtdev/evt/log"
)

// The store's JSON Schemas live in the META bucket under one key, as one
// JSON object of event type → schema, changed with a compare-and-set on
// the key's revision (like the retention rules). Every append asks
// whether there are any: the JetStream stream's metadata flag
// evt_schemas=1 answers from the stream info the open already read, so a
// store with no schema costs an append no request. The flag is set before
// the first schema is written and cleared after the last is removed; a
// flag left set by a crash costs appends one read of the key, never a
// check skipped.

const (
	keySchemas = "schemas"
	mdSchemas  = "evt_schemas"
)

// HasSchemas reports the evt_schemas flag the open read (log.SchemaStore).
func (s *Store) HasSchemas() (bool, error) { return s.schemas, nil }

// Schemas reads the schemas from the bucket (log.SchemaStore).
func (s *Store) Schemas() (map[string][]byte, error) {
	m, _, err := s.readSchemas()
	return m, err
}

func (s *Store) readSchemas() (map[string][]byte, uint64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	v, rev, err := s.kvGet(ctx, keySchemas)
	if err != nil {
		return nil, 0, err
	}
	m := map[string][]byte{}
	if v == nil {
		return m, rev, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(v, &raw); err != nil {
		return nil, 0, fmt.Errorf("nats: the schemas in %s: %w", s.bucket(), err)
	}
	for typ, sch := range raw {
		m[typ] = sch
	}
	return m, rev, nil
}

// SetSchema stores the schema of typ (log.SchemaStore).
func (s *Store) SetSchema(typ string, schema []byte) error {
	if !json.Valid(schema) {
		return fmt.Errorf("the schema of %s is not JSON", typ)
	}
	if err := s.setSchemasFlag(true); err != nil {
		return err
	}
	_, err := s.updateSchemas(func(m map[string][]byte) error {
		m[typ] = schema
		return nil
	})
	return err
}

// RemoveSchema removes the schema of typ (log.SchemaStore).
func (s *Store) RemoveSchema(typ string) error {
	left, err := s.updateSchemas(func(m map[string][]byte) error {
		if _, ok := m[typ]; !ok {
			return fmt.Errorf("%w: %s has no schema", log.ErrNotFound, typ)
		}
		delete(m, typ)
		return nil
	})
	if err != nil || left > 0 {
		return err
	}
	if err := s.setSchemasFlag(false); err != nil {
		return err
	}
	// A schema set between the update and the flag's clearing would
	// go unchecked: set the flag again if one came.
	m, _, err := s.readSchemas()
	if err != nil || len(m) == 0 {
		return err
	}
	return s.setSchemasFlag(true)
}

// updateSchemas applies fn to the schemas and stores the result with a
// compare-and-set, again until no other writer got in first; it returns
// how many schemas are left.
func (s *Store) updateSchemas(fn func(m map[string][]byte) error) (int, error) {
	for {
		m, rev, err := s.readSchemas()
		if err != nil {
			return 0, err
		}
		if err := fn(m); err != nil {
			return 0, err
		}
		raw := make(map[string]json.RawMessage, len(m))
		for typ, sch := range m {
			raw[typ] = sch
		}
		data, err := json.Marshal(raw)
		if err != nil {
			return 0, err
		}
		ctx, cancel := s.ctx()
		ok, err := s.kvPut(ctx, keySchemas, data, rev)
		cancel()
		if err != nil {
			return 0, err
		}
		if ok {
			return len(m), nil
		}
	}
}

// setSchemasFlag sets or clears the stream's evt_schemas metadata.
func (s *Store) setSchemasFlag(on bool) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if !s.exists {
		if err := s.create(ctx); err != nil {
			return err
		}
	}
	info, err := s.streamInfo(ctx)
	if err != nil {
		return s.wrap("read the stream's settings", err)
	}
	cfg := info.Config
	if (cfg.Metadata[mdSchemas] == "1") == on {
		s.schemas = on
		return nil
	}
	md := maps.Clone(cfg.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	if on {
		md[mdSchemas] = "1"
	} else {
		delete(md, mdSchemas)
	}
	cfg.Metadata = md
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		return s.wrap("set the stream's "+mdSchemas+" metadata", err)
	}
	s.schemas = on
	return nil
}
