package full

import (
	"errors"
	"testing"

	"github.com/evtdev/evt/codec/schema"
)

const orderSchema = `{
  "type": "object",
  "required": ["amount", "items"],
  "properties": {
    "amount": {"type": "integer", "minimum": 1},
    "currency": {"enum": ["EUR", "USD"]},
    "items": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["sku", "price"],
        "properties": {"sku": {"type": "string"}, "price": {"type": "number", "exclusiveMinimum": 0}}
      }
    }
  }
}`

func TestValidate(t *testing.T) {
	set, err := Compile(map[string][]byte{"Placed": []byte(orderSchema)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, data string
		pointer    string // "-": the data matches
		reason     string
	}{
		{"valid", `{"amount":3,"items":[{"sku":"a","price":1.5}]}`, "-", ""},
		{"wrong type at the root", `"x"`, "", "got string, want object"},
		{"missing property", `{"items":[]}`, "", "missing property 'amount'"},
		{"below minimum", `{"amount":0,"items":[]}`, "/amount", "minimum: got 0, want 1"},
		{"not in enum", `{"amount":1,"currency":"GBP","items":[]}`, "/currency", "value must be one of 'EUR', 'USD'"},
		{"nested array item", `{"amount":1,"items":[{"sku":"a","price":1},{"sku":"b","price":2},{"sku":"c","price":-1}]}`, "/items/2/price", "exclusiveMinimum: got -1, want 0"},
		{"nested missing", `{"amount":1,"items":[{"sku":"a"}]}`, "/items/0", "missing property 'price'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := set.Validate("Placed", []byte(tc.data))
			if tc.pointer == "-" {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			var m *schema.MismatchError
			if !errors.As(err, &m) {
				t.Fatalf("Validate: %v, want a *schema.MismatchError", err)
			}
			if m.Pointer != tc.pointer || m.Reason != tc.reason {
				t.Fatalf("Validate: pointer %q reason %q, want %q %q", m.Pointer, m.Reason, tc.pointer, tc.reason)
			}
		})
	}
	if err := set.Validate("Other", []byte(`"anything"`)); err != nil {
		t.Fatalf("a type without a schema: %v", err)
	}
}

func TestCompileRefuses(t *testing.T) {
	for _, tc := range []struct{ name, schema string }{
		{"not JSON", `{"type":`},
		{"bad keyword value", `{"type": 7}`},
		{"a file", `{"$ref": "file:///etc/passwd"}`},
		{"a URL", `{"$ref": "https://example.com/s.json"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check("T", []byte(tc.schema)); err == nil {
				t.Fatal("Check accepted it")
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	set, err := Compile(map[string][]byte{"Placed": []byte(orderSchema)})
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"amount":138,"currency":"EUR","account":"account-0","note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","items":[{"sku":"s0","price":0.5},{"sku":"s1","price":1.5}]}`)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := set.Validate("Placed", data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDrafts: a schema's $schema picks its draft (draft-04's
// exclusiveMinimum is a boolean), though nothing else is loaded.
func TestDrafts(t *testing.T) {
	set, err := Compile(map[string][]byte{
		"Old": []byte(`{"$schema":"http://json-schema.org/draft-04/schema#","minimum":1,"exclusiveMinimum":true}`),
		"New": []byte(`{"$schema":"https://json-schema.org/draft/2020-12/schema","exclusiveMinimum":1}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"Old", "New"} {
		if err := set.Validate(typ, []byte(`1`)); err == nil {
			t.Errorf("%s: 1 passes an exclusive minimum of 1", typ)
		}
		if err := set.Validate(typ, []byte(`2`)); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}
