package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/evtdev/evt/codec"
)

// The -o template=TEXT output (CLI.md, "Everywhere"): a Go template over
// the JSON document a command prints (an event's envelope, a listing's
// row), with the JSON field names as keys. A key the value lacks is an
// error naming it, never "<no value>", and a document prints whole or not
// at all. The Printer calls parseOutputTemplate and executeOutputTemplate;
// CheckEventTemplate lets a command refuse a template before it reads.

// EnvelopeKeys are the keys of an event's JSON envelope, in order;
// metadata is absent from events that have none.
var EnvelopeKeys = []string{"position", "stream", "version", "type", "time", "id", "data", "metadata"}

// parseOutputTemplate parses the TEXT of -o template=TEXT. It is strict:
// missingkey=error makes a key a map lacks an error instead of
// "<no value>" (and instead of a nil pointer on the next key).
func parseOutputTemplate(text string) (*template.Template, error) {
	t, err := template.New("output").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("invalid output template: %s", templateMessage(err.Error(), strings.Contains(text, "\n")))
	}
	return t, nil
}

// executeOutputTemplate prints one JSON document through t, and a newline,
// to w. The output is built first, so a template that fails half-way
// prints nothing of that document; the error says in evt's words which
// key was missing, and where.
func executeOutputTemplate(w io.Writer, t *template.Template, doc []byte) error {
	v, err := codec.DecodeJSON(doc) // exact numbers: 1234567, not 1.234567e+06
	if err != nil {
		return err
	}
	return executeTemplate(w, t, v)
}

// executeTemplate is executeOutputTemplate for a document already decoded.
func executeTemplate(w io.Writer, t *template.Template, v any) error {
	if isEnvelope(v) {
		// metadata is left out of the JSON when empty; a template sees
		// it as the empty object it stands for, so {{with .metadata}}
		// works on every event and {{.metadata.c}} names the key "c".
		obj := v.(map[string]any)
		if _, ok := obj["metadata"]; !ok {
			obj["metadata"] = map[string]any{}
		}
	}
	var out bytes.Buffer
	if err := t.Execute(&out, v); err != nil {
		return templateExecError(err, v)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// CheckEventTemplate refuses, before anything is read or printed, an -o
// value that is a template naming at its top level a key no event has
// ({{.Stream}} for {{.stream}}). Keys inside data and metadata vary from
// event to event; those are checked as each event prints. Any other -o
// value passes (NewPrinter checks it).
func CheckEventTemplate(format string) error {
	text, ok := strings.CutPrefix(format, "template=")
	if !ok {
		return nil
	}
	t, err := parseOutputTemplate(text)
	if err != nil || t.Tree == nil {
		return nil // NewPrinter reports the error; an empty template names nothing
	}
	known := map[string]bool{}
	for _, k := range EnvelopeKeys {
		known[k] = true
	}
	// The main template only: one that {{define}} makes may be called
	// with another dot.
	var bad []string
	rootKeys(t.Tree.Root, true, func(key string) {
		if !known[key] {
			bad = append(bad, key)
		}
	})
	if len(bad) == 0 {
		return nil
	}
	hint := didYouMean(bad[0], EnvelopeKeys)
	if hint == "" {
		hint = " (they have " + strings.Join(EnvelopeKeys, ", ") + ")"
	}
	return fmt.Errorf("output template: <.%s>: events have no key %q%s", bad[0], bad[0], hint)
}

// rootKeys calls fn with the first key of every field chain that starts
// at the document itself: .key anywhere dot is still the document
// (outside the bodies of range and with, which move it), and $.key
// anywhere.
func rootKeys(n parse.Node, dotIsRoot bool, fn func(string)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				rootKeys(c, dotIsRoot, fn)
			}
		}
	case *parse.ActionNode:
		rootKeys(n.Pipe, dotIsRoot, fn)
	case *parse.PipeNode:
		if n != nil {
			for _, c := range n.Cmds {
				rootKeys(c, dotIsRoot, fn)
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			rootKeys(a, dotIsRoot, fn)
		}
	case *parse.ChainNode:
		rootKeys(n.Node, dotIsRoot, fn)
	case *parse.FieldNode:
		if dotIsRoot && len(n.Ident) > 0 {
			fn(n.Ident[0])
		}
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			fn(n.Ident[1])
		}
	case *parse.IfNode:
		rootKeys(n.Pipe, dotIsRoot, fn)
		rootKeys(n.List, dotIsRoot, fn)
		rootKeys(n.ElseList, dotIsRoot, fn)
	case *parse.RangeNode:
		rootKeys(n.Pipe, dotIsRoot, fn)
		rootKeys(n.List, false, fn)
		rootKeys(n.ElseList, dotIsRoot, fn)
	case *parse.WithNode:
		rootKeys(n.Pipe, dotIsRoot, fn)
		rootKeys(n.List, false, fn)
		rootKeys(n.ElseList, dotIsRoot, fn)
	case *parse.TemplateNode:
		rootKeys(n.Pipe, dotIsRoot, fn)
	}
}

// isEnvelope reports whether a decoded document is an event's envelope
// rather than a listing's row (a group's row has a position too).
func isEnvelope(doc any) bool {
	obj, ok := doc.(map[string]any)
	if !ok {
		return false
	}
	for _, k := range EnvelopeKeys[:7] { // all but metadata
		if _, ok := obj[k]; !ok {
			return false
		}
	}
	return true
}

// What text/template says when it stops, and the parts evt keeps.
// Compiled on first use: only a failing template needs them, and
// compiling them at package init cost every evt process, a one-event
// append too, about 0.1 ms.
var (
	execErrorRe   = lazyRegexp(`^template: [^:]*:\d+:\d+: executing "[^"]*" at <(.*)>: (.*)$`)
	noEntryRe     = lazyRegexp(`^map has no entry for key "(.*)"$|^nil data; no entry for key "(.*)"$`)
	nilPointerRe  = lazyRegexp(`^nil pointer evaluating .*\.([^.]*)$`)
	cantEvalRe    = lazyRegexp(`^can't evaluate field (\S+) in type (.*)$`)
	parseLocation = lazyRegexp(`^template: [^:]*:(\d+):(?:\d+:)? ?`)
)

// lazyRegexp returns a function that compiles expr the first time it is
// called and returns the same *regexp.Regexp from then on.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// templateExecError turns text/template's execution error into one line
// in evt's words: the action that failed, the document (the event's
// position when it has one), the key, and what stood where an object was
// wanted.
func templateExecError(err error, doc any) error {
	var ee template.ExecError
	if !errors.As(err, &ee) {
		return fmt.Errorf("output template: %w", err) // a write error
	}
	m := execErrorRe().FindStringSubmatch(ee.Err.Error())
	if m == nil {
		return fmt.Errorf("output template: %s", templateMessage(ee.Err.Error(), false))
	}
	action, msg := m[1], m[2]
	subject := "the row"
	obj, isObject := doc.(map[string]any)
	if isEnvelope(doc) {
		subject = fmt.Sprintf("the event at position %v", obj["position"])
	}
	switch {
	case noEntryRe().MatchString(msg):
		sm := noEntryRe().FindStringSubmatch(msg)
		key := sm[1] + sm[2]
		hint := ""
		if isObject && (strings.HasPrefix(action, "."+key) || strings.HasPrefix(action, "$."+key)) {
			hint = didYouMean(key, sortedKeys(obj))
		}
		return fmt.Errorf("output template: <%s>: %s has no key %q%s", action, subject, key, hint)
	case nilPointerRe().MatchString(msg), cantEvalRe().MatchString(msg):
		key := ""
		if sm := nilPointerRe().FindStringSubmatch(msg); sm != nil {
			key = sm[1]
		} else {
			key = cantEvalRe().FindStringSubmatch(msg)[1]
		}
		return fmt.Errorf("output template: <%s>: %s has no key %q: %s", action, subject, key, notAnObject(doc, action, key))
	}
	return fmt.Errorf("output template: <%s>: %s (%s)", action, msg, subject)
}

// fieldChainRe matches an action that is a plain chain of keys from the
// document: .data.amount, $.metadata.c.
var fieldChainRe = lazyRegexp(`^\$?(\.[^.\s()|]+)+$`)

// notAnObject says what stood where key was looked up, for an action
// that is a plain chain of keys from the document (".data is a string,
// not an object"); otherwise it can only say that it was no object.
func notAnObject(doc any, action, key string) string {
	if fieldChainRe().MatchString(action) {
		idents := strings.Split(strings.TrimPrefix(strings.TrimPrefix(action, "$"), "."), ".")
		v := doc
		for i, id := range idents {
			if id == key {
				parent := "." + strings.Join(idents[:i], ".")
				switch v := v.(type) {
				case nil:
					return parent + " is null"
				case map[string]any:
					// Dot was moved (range, with): the chain is not from the document.
				default:
					return parent + " is " + jsonKind(v) + ", not an object"
				}
				break
			}
			m, ok := v.(map[string]any)
			if !ok {
				break
			}
			v = m[id]
		}
	}
	return "its parent is not an object"
}

// templateMessage drops text/template's "template: output:1:" prefix; a
// template of several lines keeps the line number.
func templateMessage(msg string, multiline bool) string {
	m := parseLocation().FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	rest := msg[len(m[0]):]
	if multiline {
		return "line " + m[1] + ": " + rest
	}
	return rest
}

// jsonKind names the JSON kind of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "true or false"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// didYouMean suggests the key of keys that differs from key only in case
// ({{.Stream}} for .stream), or nothing.
func didYouMean(key string, keys []string) string {
	for _, k := range keys {
		if k != key && strings.EqualFold(k, key) {
			return " (did you mean ." + k + "?)"
		}
	}
	return ""
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
