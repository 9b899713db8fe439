package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/atomicfile"
	"github.com/evtdev/evt/log/local/vfs"
)

// schemasFile holds the store's JSON Schemas, one JSON object of event
// type → schema, replaced whole by atomicfile under the append lock.
// It exists only while the store has a schema (RemoveSchema of the last
// one removes it), so that an append into a store without schemas pays
// one failed stat and reads nothing (HasSchemas).
const schemasFile = "schemas.json"

// HasSchemas reports whether the store in dir keeps a JSON Schema: one
// stat, for the commands to ask before they open the store.
func HasSchemas(dir string) bool {
	_, err := vfs.OS.Stat(join(dir, schemasFile))
	return err == nil
}

// HasSchemas reports whether the store keeps a schema (log.SchemaStore).
func (s *Store) HasSchemas() (bool, error) {
	_, err := s.fsys.Stat(join(s.dir, schemasFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Schemas returns the store's schemas (log.SchemaStore).
func (s *Store) Schemas() (map[string][]byte, error) {
	b, err := vfs.ReadFile(s.fsys, join(s.dir, schemasFile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		// A file evt did not write: checking events against a guess
		// would let through what a schema forbids.
		return nil, &log.CorruptError{File: schemasFile, Offset: -1, Reason: err.Error()}
	}
	out := make(map[string][]byte, len(raw))
	for typ, sch := range raw {
		out[typ] = sch
	}
	return out, nil
}

// SetSchema stores the schema of typ (log.SchemaStore).
func (s *Store) SetSchema(typ string, schema []byte) error {
	if !json.Valid(schema) {
		return fmt.Errorf("the schema of %s is not JSON", typ)
	}
	return s.updateSchemas(func(m map[string][]byte) error {
		m[typ] = schema
		return nil
	})
}

// RemoveSchema removes the schema of typ (log.SchemaStore).
func (s *Store) RemoveSchema(typ string) error {
	return s.updateSchemas(func(m map[string][]byte) error {
		if _, ok := m[typ]; !ok {
			return fmt.Errorf("%w: %s has no schema", log.ErrNotFound, typ)
		}
		delete(m, typ)
		return nil
	})
}

// updateSchemas applies fn to the schemas under the append lock, which
// every writer of the file takes, and writes the result: the file, or
// no file when no schema is left.
func (s *Store) updateSchemas(fn func(m map[string][]byte) error) error {
	if s.lock == nil {
		return errors.New("changing schemas needs a store opened for writing")
	}
	if err := s.lock.acquire(context.Background(), s.opts.LockTimeout); err != nil {
		return err
	}
	defer s.lock.release()
	m, err := s.Schemas()
	if err != nil {
		return err
	}
	if err := fn(m); err != nil {
		return err
	}
	p := join(s.dir, schemasFile)
	if len(m) == 0 {
		if err := s.fsys.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", schemasFile, err)
		}
		return s.fsys.SyncDir(s.dir)
	}
	raw := make(map[string]json.RawMessage, len(m))
	for typ, sch := range m {
		raw[typ] = sch
	}
	b, err := json.Marshal(raw) // sorted by type, each schema compact
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFS(s.fsys, p, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", schemasFile, err)
	}
	return nil
}
