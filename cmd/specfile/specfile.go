// Package specfile reads a fold spec file (evt fold --spec FILE), written
// in YAML or JSON (JSON is YAML), into a *fold.Spec. The YAML parser lives
// here, on the CLI's side, so that package fold links none: fold.NewSpec
// takes the decoded document, and this package decodes it.
package specfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/fold"
	"go.yaml.in/yaml/v3"
)

// Parse parses a spec written in YAML or JSON. Every expression is
// compiled here, so a spec that parses cannot fail later for its syntax.
// Errors name the key or event type at fault and match fold.ErrBadSpec.
//
// YAML values become the JSON values jq sees: mappings objects (keys are
// the text of scalar keys, so `true:` or `1:` are the strings "true" and
// "1"), numbers json.Number (their text when it is JSON's, as
// codec.DecodeJSON would give, else their value: 0x1f is 31), timestamps
// and binary their text. Aliases and merge keys (<<) are expanded.
func Parse(b []byte) (*fold.Spec, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", fold.ErrBadSpec, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%w: empty", fold.ErrBadSpec)
	}
	c := converter{budget: maxNodes}
	v, err := c.value(doc.Content[0], "", 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", fold.ErrBadSpec, err)
	}
	return fold.NewSpec(v)
}

// maxNodes bounds the YAML nodes a spec may expand to: aliases can
// make a small file describe an exponentially large value ("billion
// laughs"), or a cyclic one.
const maxNodes = 100_000

type converter struct {
	budget int
}

// value converts a YAML node to a JSON value; path locates it in messages.
func (c *converter) value(n *yaml.Node, path string, depth int) (any, error) {
	c.budget--
	if c.budget < 0 {
		return nil, errors.New("too large: more than 100000 values once aliases are expanded")
	}
	if depth > codec.MaxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", codec.MaxJSONDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0], path, depth)
	case yaml.AliasNode:
		return c.value(n.Alias, path, depth)
	case yaml.SequenceNode:
		a := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			v, err := c.value(e, path+"."+strconv.Itoa(i), depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	case yaml.MappingNode:
		return c.mapping(n, path, depth)
	case yaml.ScalarNode:
		return c.scalar(n, path)
	}
	return nil, fmt.Errorf("%sline %d: unsupported YAML node", at(path), n.Line)
}

// mapping converts a mapping. Explicit keys win over merged ones (<<),
// and of several merged mappings the first wins, as YAML's merge key
// specifies; a key written twice is an error.
func (c *converter) mapping(n *yaml.Node, path string, depth int) (map[string]any, error) {
	m := make(map[string]any, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		for k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%sline %d: a key must be a scalar", at(path), k.Line)
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if _, dup := m[k.Value]; dup {
			return nil, fmt.Errorf("%sline %d: key %q written twice", at(path), k.Line, k.Value)
		}
		e, err := c.value(v, path+"."+k.Value, depth+1)
		if err != nil {
			return nil, err
		}
		m[k.Value] = e
	}
	for _, v := range merges {
		for v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		srcs := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, src := range srcs {
			e, err := c.value(src, path, depth)
			if err != nil {
				return nil, err
			}
			mm, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%sline %d: << must merge a mapping", at(path), v.Line)
			}
			for k, x := range mm {
				if _, set := m[k]; !set {
					m[k] = x
				}
			}
		}
	}
	return m, nil
}

func (c *converter) scalar(n *yaml.Node, path string) (any, error) {
	switch tag := n.ShortTag(); tag {
	case "!!null":
		return nil, nil
	case "!!str", "!!timestamp", "!!binary":
		return n.Value, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("%sline %d: %w", at(path), n.Line, err)
		}
		return b, nil
	case "!!int", "!!float":
		if codec.ValidNumber(n.Value) {
			return json.Number(n.Value), nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("%sline %d: %w", at(path), n.Line, err)
		}
		num, err := number(v)
		if err != nil {
			return nil, fmt.Errorf("%sline %d: %w", at(path), n.Line, err)
		}
		return num, nil
	default:
		return nil, fmt.Errorf("%sline %d: unsupported YAML tag %s", at(path), n.Line, tag)
	}
}

// number converts a YAML number that is not written as JSON writes
// numbers (0x1f, +7, .5, .inf) to the JSON number of its value.
func number(v any) (any, error) {
	switch v := v.(type) {
	case int:
		return json.Number(strconv.Itoa(v)), nil
	case int64:
		return json.Number(strconv.FormatInt(v, 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(v, 10)), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", v)
		}
		b, err := codec.AppendJSON(nil, v)
		if err != nil {
			return nil, err
		}
		return json.Number(b), nil
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

// at prefixes a message with the place of a value in the spec.
func at(path string) string {
	if path == "" {
		return ""
	}
	return strings.TrimPrefix(path, ".") + ": "
}
