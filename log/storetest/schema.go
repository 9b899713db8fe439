package storetest

import (
	"errors"

	"github.com/evtdev/evt/log"
)

// testSchemas: SetSchema, Schemas, RemoveSchema keep the text by type;
// HasSchemas, on a handle opened after the change, says whether any is
// left (what an append asks before it reads its input).
func testSchemas(e *env) {
	t := e.t
	e.append(e.s, ev{stream: "a-1", typ: "T"})
	if has, err := e.another().HasSchemas(); err != nil || has {
		t.Fatalf("HasSchemas of a store without schemas: %v, %v", has, err)
	}
	if err := e.s.SetSchema("A", []byte(`{"type":"object"}`)); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SetSchema("B", []byte(`true`)); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SetSchema("A", []byte(`{"type":"string"}`)); err != nil {
		t.Fatal(err)
	}
	o := e.another()
	if has, err := o.HasSchemas(); err != nil || !has {
		t.Fatalf("HasSchemas after SetSchema: %v, %v", has, err)
	}
	m, err := o.Schemas()
	if err != nil || len(m) != 2 || string(m["A"]) != `{"type":"string"}` || string(m["B"]) != `true` {
		t.Fatalf("Schemas: %q, %v", m, err)
	}
	if err := e.s.RemoveSchema("C"); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("RemoveSchema of a type without one: %v, want ErrNotFound", err)
	}
	if err := e.s.RemoveSchema("A"); err != nil {
		t.Fatal(err)
	}
	if has, err := e.another().HasSchemas(); err != nil || !has {
		t.Fatalf("HasSchemas with one schema left: %v, %v", has, err)
	}
	if err := e.s.RemoveSchema("B"); err != nil {
		t.Fatal(err)
	}
	o = e.another()
	if has, err := o.HasSchemas(); err != nil || has {
		t.Fatalf("HasSchemas after the last RemoveSchema: %v, %v", has, err)
	}
	if m, err := o.Schemas(); err != nil || len(m) != 0 {
		t.Fatalf("Schemas after the last RemoveSchema: %q, %v", m, err)
	}
}
