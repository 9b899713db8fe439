package output

import (
	"bytes"
	"testing"
)

func TestOutputTemplate(t *testing.T) {
	const event = `{"position":7,"stream":"account-1","version":2,"type":"Deposited","time":"2026-11-25T22:00:00.000000000Z","id":"i","data":{"amount":50,"big":12345678901234567890,"s":"x","n":null,"list":[1]}}`
	const row = `{"stream":"account-1","version":2}`
	for _, c := range []struct {
		tmpl, doc string
		want      string // the output, without its newline
		err       string // or the error
	}{
		{`{{.stream}}@{{.version}}`, event, "account-1@2", ""},
		{`{{.data.amount}} {{.data.big}}`, event, "50 12345678901234567890", ""},
		{`{{.metadata}}`, event, "map[]", ""}, // empty metadata is {} to a template
		{`{{with .metadata}}{{.c}}{{else}}none{{end}}`, event, "none", ""},
		{`{{with index .data "nope"}}{{.}}{{else}}-{{end}}`, event, "-", ""},
		{`{{range .data.list}}[{{.}}]{{end}}`, event, "[1]", ""},
		{`{{.stream}}`, row, "account-1", ""},
		// Keys the value lacks.
		{`{{.Stream}}`, event, "", `output template: <.Stream>: the event at position 7 has no key "Stream" (did you mean .stream?)`},
		{`{{.stream}} {{.nope}}`, event, "", `output template: <.nope>: the event at position 7 has no key "nope"`},
		{`{{.metadata.c}}`, event, "", `output template: <.metadata.c>: the event at position 7 has no key "c"`},
		{`{{$.metadata.c}}`, event, "", `output template: <$.metadata.c>: the event at position 7 has no key "c"`},
		{`{{.data.amount.x}}`, event, "", `output template: <.data.amount.x>: the event at position 7 has no key "x": .data.amount is a number, not an object`},
		{`{{.data.s.x}}`, event, "", `output template: <.data.s.x>: the event at position 7 has no key "x": .data.s is a string, not an object`},
		{`{{.data.n.x}}`, event, "", `output template: <.data.n.x>: the event at position 7 has no key "x": .data.n is null`},
		{`{{.data.list.x}}`, event, "", `output template: <.data.list.x>: the event at position 7 has no key "x": .data.list is an array, not an object`},
		{`{{.Version}}`, row, "", `output template: <.Version>: the row has no key "Version" (did you mean .version?)`},
		{`{{range .data.list}}{{.x}}{{end}}`, event, "", `output template: <.x>: the event at position 7 has no key "x": its parent is not an object`},
	} {
		tm, err := parseOutputTemplate(c.tmpl)
		if err != nil {
			t.Errorf("%s: %v", c.tmpl, err)
			continue
		}
		var out bytes.Buffer
		err = executeOutputTemplate(&out, tm, []byte(c.doc))
		switch {
		case c.err == "" && (err != nil || out.String() != c.want+"\n"):
			t.Errorf("%s: %q, %v; want %q", c.tmpl, out.String(), err, c.want)
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("%s: error %v, want %s", c.tmpl, err, c.err)
		case c.err != "" && out.Len() != 0:
			t.Errorf("%s: printed %q before failing", c.tmpl, out.String())
		}
	}
}

func TestOutputTemplateParse(t *testing.T) {
	for tmpl, want := range map[string]string{
		`{{.stream`:                 `invalid output template: unclosed action`,
		"{{.stream}}\n{{nosuch .}}": `invalid output template: line 2: function "nosuch" not defined`,
		`{{end}}`:                   `invalid output template: unexpected {{end}}`,
	} {
		if _, err := parseOutputTemplate(tmpl); err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %s", tmpl, err, want)
		}
	}
}

func TestCheckEventTemplate(t *testing.T) {
	for format, want := range map[string]string{
		"json": "",
		"template={{.stream}} {{.data.anything}}":                       "",
		"template={{.metadata.c}}":                                      "",
		"template={{range .data}}{{.Stream}}{{end}}":                    "", // dot moved: not the envelope's keys
		"template={{with .data}}{{.Stream}}{{end}}":                     "",
		"template={{with .data}}{{$.Stream}}{{end}}":                    `output template: <.Stream>: events have no key "Stream" (did you mean .stream?)`,
		"template={{.Stream}}":                                          `output template: <.Stream>: events have no key "Stream" (did you mean .stream?)`,
		"template={{if .Type}}x{{end}}":                                 `output template: <.Type>: events have no key "Type" (did you mean .type?)`,
		"template={{.pos}}":                                             `output template: <.pos>: events have no key "pos" (they have position, stream, version, type, time, id, data, metadata)`,
		`template={{define "x"}}{{.nope}}{{end}}{{template "x" .data}}`: "", // may be called with another dot
		"template={{.stream":                                            "", // NewPrinter reports it
	} {
		err := CheckEventTemplate(format)
		if got := ""; err != nil {
			got = err.Error()
			if got != want {
				t.Errorf("%q: %s, want %q", format, got, want)
			}
		} else if want != "" {
			t.Errorf("%q: accepted, want %s", format, want)
		}
	}
}
