package log

// SchemaStore keeps a JSON Schema per event type (evt schema set). The
// store only keeps the schemas' text: the commands compile them and check
// the data of every event an append or import brings against its type's
// schema before the batch reaches Append, so a batch with one event that
// does not match writes nothing.
//
// An append checks against the schemas it read when it began: a schema
// set while it runs applies to the appends that begin after SetSchema
// returned.
type SchemaStore interface {
	// HasSchemas reports whether the store keeps any schema. Every append
	// asks, so it costs at most one stat (local) or nothing beyond what
	// opening the store read (nats); a store with no schema pays nothing
	// more per append.
	HasSchemas() (bool, error)

	// Schemas returns the text of every schema, by event type, as
	// compact JSON (empty, not an error, when there is none).
	Schemas() (map[string][]byte, error)

	// SetSchema stores schema (JSON text the caller compiled and checked)
	// as the schema of typ, replacing the one it had, atomically and
	// durably. It creates nothing else: a store opened for writing.
	SetSchema(typ string, schema []byte) error

	// RemoveSchema removes the schema of typ: an error wrapping
	// ErrNotFound when it has none.
	RemoveSchema(typ string) error
}
