package output

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
)

// The CLI tests (cmd/print_test.go, the scripts) cover the formats on a
// real store; these pin what a printer does with one document.

func testEvent() *codec.Event {
	return &codec.Event{
		Position: 3, Stream: "account-7", Version: 2, Type: "Deposited",
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), ID: "e-1",
		Data: []byte(`{"amount":12345678901234567890,"note":"a\tb"}`),
	}
}

func printOne(t *testing.T, format, jq string, tty bool, print func(p *Printer) error) string {
	t.Helper()
	var out bytes.Buffer
	p, err := NewPrinter(&out, format, tty)
	if err != nil {
		t.Fatal(err)
	}
	if jq != "" {
		j, err := CompileJQ(jq)
		if err != nil {
			t.Fatal(err)
		}
		p.SetJQ(j)
	}
	if err := print(p); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestPrinterFormats(t *testing.T) {
	ev := func(p *Printer) error { return p.Event(testEvent()) }
	row := func(p *Printer) error {
		return p.Row([]Field{{Key: "name", Value: "a\tb"}, {Key: "n", Value: uint64(7)}, {Key: "at", Value: time.Time{}}})
	}
	table := func(p *Printer) error {
		if err := p.Row([]Field{{Key: "stream", Value: "account-7"}, {Key: "n", Value: 7}}); err != nil {
			return err
		}
		return p.Row([]Field{{Key: "stream", Value: "a"}, {Key: "n", Value: 12}})
	}
	tests := []struct {
		name, format, jq string
		tty              bool
		print            func(p *Printer) error
		want             string
	}{
		{"event ndjson", "", "", false, ev, `{"position":3,"stream":"account-7","version":2,"type":"Deposited","time":"2026-01-02T03:04:05.000000006Z","id":"e-1","data":{"amount":12345678901234567890,"note":"a\tb"}}` + "\n"},
		{"event jq keeps numbers exact", "", ".data.amount", false, ev, "12345678901234567890\n"},
		{"event jq strings raw", "", ".data.note", false, ev, "a\tb\n"},
		{"event template", "template={{.stream}} {{.data.amount}}", "", false, ev, "account-7 12345678901234567890\n"},
		{"event yaml", "yaml", ".data", false, ev, "amount: 12345678901234567890\nnote: \"a\\tb\"\n"},
		{"row piped", "", "", false, row, "a b\t7\t\n"},
		{"row json", "json", "", false, row, `{"name":"a\tb","n":7,"at":null}` + "\n"},
		{"row table", "", "", true, table, "STREAM     N\naccount-7  7\na          12\n"},
	}
	for _, tc := range tests {
		if got := printOne(t, tc.format, tc.jq, tc.tty, tc.print); got != tc.want {
			t.Errorf("%s: got\n%q\nwant\n%q", tc.name, got, tc.want)
		}
	}
}

func TestNewPrinterErrors(t *testing.T) {
	for format, want := range map[string]string{
		"xml":               `invalid output format "xml" (want json, pretty, table, yaml or template=GO-TEMPLATE)`,
		"template={{.a":     "invalid output template: unclosed action",
		"template={{.a}}}}": "",
	} {
		_, err := NewPrinter(&bytes.Buffer{}, format, false)
		if got := ""; err != nil {
			got = err.Error()
			if got != want {
				t.Errorf("NewPrinter(%q) = %q, want %q", format, got, want)
			}
		} else if want != "" {
			t.Errorf("NewPrinter(%q) succeeded, want %q", format, want)
		}
	}
}

func TestAppendRowJSONIsJSON(t *testing.T) {
	b := AppendRowJSON(nil, []Field{{Key: "k\"", Value: []int{1}}, {Key: "raw", Value: json.RawMessage(`{"a":1}`)}, {Key: "i", Value: -2}})
	if want := `{"k\"":[1],"raw":{"a":1},"i":-2}`; string(b) != want || !json.Valid(b) {
		t.Errorf("AppendRowJSON = %s, want %s", b, want)
	}
}

// eventValue is the decoded envelope, without the round trip.
func TestEventValue(t *testing.T) {
	for _, meta := range []string{"", `{"correlation_id":"c-1","n":1.50}`} {
		e := testEvent()
		if meta != "" {
			e.Metadata = []byte(meta)
		}
		got, err := eventValue(e)
		if err != nil {
			t.Fatal(err)
		}
		want, err := codec.DecodeJSON(codec.AppendEventJSON(nil, e))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("eventValue = %#v\nwant %#v", got, want)
		}
	}
}

// Data may nest as deep as append allows; --jq and templates still print
// the event, whose envelope is one level deeper.
func TestDeepEventPrints(t *testing.T) {
	e := testEvent()
	e.Data = []byte(strings.Repeat("[", codec.MaxJSONDepth) + strings.Repeat("]", codec.MaxJSONDepth))
	if _, err := codec.AppendCompact(nil, e.Data); err != nil {
		t.Fatalf("append would refuse the data: %v", err)
	}
	print := func(p *Printer) error { return p.Event(e) }
	if got := printOne(t, "", ".stream", false, print); got != "account-7\n" {
		t.Errorf("--jq .stream = %q", got)
	}
	if got := printOne(t, "template={{.version}}", "", false, print); got != "2\n" {
		t.Errorf("template = %q", got)
	}
}
