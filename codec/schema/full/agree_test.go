package full

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/codec/schema"
)

// The quick validator (package schema) must agree with jsonschema/v6 on
// every schema of its subset and every data: FuzzAgrees generates both
// from the fuzzer's bytes, FuzzAgreesData feeds raw data to fixed
// schemas.

// gen draws choices from the fuzzer's bytes (zeros when they run out).
type gen struct {
	b []byte
}

func (g *gen) n(k int) int {
	if len(g.b) == 0 {
		return 0
	}
	v := int(g.b[0])
	g.b = g.b[1:]
	return v % k
}

var (
	genNames   = []string{"a", "b", "price", "x~y", "s/t", "é", `q"`}
	genStrings = []string{"", "a", "EUR", "é", "ab", "abc", `q"`, "\u00e9t\u00e9", "xyzw"}
	genNumbers = []string{"0", "1", "-1", "1.5", "2", "10", "1.0", "1e2", "-0.5", "3", "100", "12345678901234567890", "0.1"}
)

func (g *gen) scalar() string {
	switch g.n(4) {
	case 0:
		return strconv.Quote(genStrings[g.n(len(genStrings))])
	case 1:
		return genNumbers[g.n(len(genNumbers))]
	case 2:
		return []string{"true", "false"}[g.n(2)]
	}
	return "null"
}

// schema writes a random schema of the subset, depth levels deep at most.
func (g *gen) schema(depth int) string {
	switch g.n(10) {
	case 0:
		return "true"
	case 1:
		if g.n(3) == 0 {
			return "false"
		}
	}
	var kws []string
	types := []string{"null", "boolean", "integer", "number", "string", "array", "object"}
	for range g.n(4) {
		switch g.n(12) {
		case 0:
			kws = append(kws, `"type":"`+types[g.n(len(types))]+`"`)
		case 1:
			kws = append(kws, fmt.Sprintf(`"type":["%s","%s"]`, types[g.n(len(types))], types[g.n(len(types))]))
		case 2:
			var vals []string
			for range 1 + g.n(3) {
				vals = append(vals, g.scalar())
			}
			kws = append(kws, `"enum":[`+strings.Join(vals, ",")+`]`)
		case 3:
			kws = append(kws, `"const":`+g.scalar())
		case 4:
			kw := []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}[g.n(4)]
			kws = append(kws, `"`+kw+`":`+genNumbers[g.n(len(genNumbers))])
		case 5:
			kw := []string{"minLength", "maxLength", "minItems", "maxItems"}[g.n(4)]
			kws = append(kws, fmt.Sprintf(`"%s":%d`, kw, g.n(4)))
		case 6, 7:
			if depth > 0 {
				var props []string
				for range 1 + g.n(3) {
					props = append(props, strconv.Quote(genNames[g.n(len(genNames))])+":"+g.schema(depth-1))
				}
				kws = append(kws, `"properties":{`+strings.Join(props, ",")+`}`)
			}
		case 8:
			var req []string
			for range 1 + g.n(2) {
				req = append(req, strconv.Quote(genNames[g.n(len(genNames))]))
			}
			kws = append(kws, `"required":[`+strings.Join(req, ",")+`]`)
		case 9:
			if depth > 0 {
				kws = append(kws, `"additionalProperties":`+g.schema(depth-1))
			}
		case 10:
			if depth > 0 {
				kws = append(kws, `"items":`+g.schema(depth-1))
			}
		case 11:
			kws = append(kws, `"title":"t"`)
		}
	}
	return "{" + strings.Join(kws, ",") + "}"
}

// value writes random data, depth levels deep at most, with no key twice
// in an object.
func (g *gen) value(depth int) string {
	switch k := g.n(7); {
	case k == 0 && depth > 0:
		used := map[string]bool{}
		var kv []string
		for range g.n(4) {
			name := genNames[g.n(len(genNames))]
			if !used[name] {
				used[name] = true
				kv = append(kv, strconv.Quote(name)+":"+g.value(depth-1))
			}
		}
		return "{" + strings.Join(kv, ",") + "}"
	case k == 1 && depth > 0:
		var items []string
		for range g.n(4) {
			items = append(items, g.value(depth-1))
		}
		return "[" + strings.Join(items, ",") + "]"
	case k == 2:
		// A string with an escape the quick validator must decode.
		return `"\u00e9t\u00e9"`
	}
	return g.scalar()
}

func FuzzAgrees(f *testing.F) {
	for _, seed := range []string{"", "\x06\x01\x00\x02", "\x07\x03\x06\x02\x00\x00\x00\x01\x04", "abcdefghijklmnopqrstuvwxyz0123456789"} {
		f.Add([]byte(seed), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, sb, db []byte) {
		g := &gen{b: sb}
		text := g.schema(3)
		g = &gen{b: db}
		data := g.value(3)
		agree(t, text, data)
	})
}

// agreeSchemas are the fixed schemas of FuzzAgreesData.
var agreeSchemas = []string{
	`{"type":"object","required":["amount","items"],"additionalProperties":false,"properties":{"amount":{"type":"integer","minimum":1},"currency":{"enum":["EUR","USD"]},"items":{"type":"array","maxItems":3,"items":{"type":"object","required":["sku","price"],"properties":{"sku":{"type":"string","minLength":1,"maxLength":4},"price":{"type":"number","exclusiveMinimum":0}}}}}}`,
	`{"type":["string","null"],"maxLength":3}`,
	`{"const":1.0}`,
	`{"items":{"type":"integer","maximum":12345678901234567890}}`,
	`{"additionalProperties":{"type":"boolean"},"properties":{"a":true,"b":false}}`,
}

func FuzzAgreesData(f *testing.F) {
	for _, seed := range []string{`{"amount":1,"items":[]}`, `{"amount":"1"}`, `"abcd"`, `[1,2.0,3.5]`, `{"a":1,"b":2,"c":3}`, `"\u00e9\u00e9\u00e9"`} {
		for i := range agreeSchemas {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		data, err := codec.AppendCompact(nil, raw)
		if err != nil || len(data) > 1<<12 || duplicateKeys(data) {
			return // not JSON, or checked differently by design
		}
		agree(t, agreeSchemas[int(which)%len(agreeSchemas)], string(data))
	})
}

// agree fails t unless the quick validator and jsonschema/v6 agree on
// whether data matches the schema text, and where the first mismatch is
// when jsonschema finds one alone.
func agree(t *testing.T, text, data string) {
	t.Helper()
	quick, err := schema.Compile([]byte(text))
	if errors.Is(err, schema.ErrNotQuick) {
		t.Fatalf("schema %s: %v (the generator writes only the subset)", text, err)
	}
	full, ferr := Compile(map[string][]byte{"T": []byte(text)})
	if ferr != nil {
		return // not a valid schema: evt schema set refuses it
	}
	if err != nil {
		t.Fatalf("schema %s: jsonschema compiles it, the quick validator does not: %v", text, err)
	}
	compact, err := codec.AppendCompact(nil, []byte(data))
	if err != nil {
		t.Fatalf("generated data %s: %v", data, err)
	}
	qerr := quick.Validate("T", compact)
	werr := full.Validate("T", compact)
	if (qerr == nil) != (werr == nil) {
		t.Fatalf("schema %s, data %s: quick says %v, jsonschema says %v", text, compact, qerr, werr)
	}
	if qerr == nil {
		return
	}
	var q, w *schema.MismatchError
	if !errors.As(qerr, &q) || !errors.As(werr, &w) {
		t.Fatalf("schema %s, data %s: %v / %v", text, compact, qerr, werr)
	}
	if leaves(full, compact) == 1 && q.Pointer != w.Pointer {
		t.Fatalf("schema %s, data %s: quick fails at %q (%s), jsonschema at %q (%s)", text, compact, q.Pointer, q.Reason, w.Pointer, w.Reason)
	}
}

// leaves counts the failing keywords jsonschema finds.
func leaves(s *Set, data []byte) int {
	v, _ := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	err := s.byType["T"].Validate(v)
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return 0
	}
	var count func(e *jsonschema.ValidationError) int
	count = func(e *jsonschema.ValidationError) int {
		if len(e.Causes) == 0 {
			return 1
		}
		n := 0
		for _, c := range e.Causes {
			n += count(c)
		}
		return n
	}
	return count(verr)
}

// duplicateKeys reports whether an object of data has a key twice.
func duplicateKeys(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type obj struct {
		keys   map[string]bool
		expect bool // the next string is a key
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return true
		}
		var top *obj
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch tk := tok.(type) {
		case json.Delim:
			switch tk {
			case '{':
				if top != nil && top.keys != nil {
					top.expect = true
				}
				stack = append(stack, &obj{keys: map[string]bool{}, expect: true})
			case '[':
				if top != nil && top.keys != nil {
					top.expect = true
				}
				stack = append(stack, &obj{})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.keys != nil && top.expect {
				if top.keys[tk] {
					return true
				}
				top.keys[tk] = true
				top.expect = false
				continue
			}
			if top != nil && top.keys != nil {
				top.expect = true
			}
		default:
			if top != nil && top.keys != nil {
				top.expect = true
			}
		}
	}
}
