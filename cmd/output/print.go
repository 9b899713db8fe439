// Package output prints what commands show: events and listing rows as
// NDJSON, pretty JSON, YAML, tables, tab-separated lines or a Go template,
// optionally through a jq expression (--jq). It is the CLI side of the
// envelope: codec encodes an event as JSON, output decides how it looks.
package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/evtdev/evt/codec"
	"go.yaml.in/yaml/v3"
)

// Output formats (the -o flag).
const (
	FormatAuto     = ""
	FormatJSON     = "json"
	FormatPretty   = "pretty"
	FormatTable    = "table"
	FormatYAML     = "yaml"
	FormatTemplate = "template"
	FormatTSV      = "tsv" // listings piped: plain tab-separated rows
)

// Field is one named value of a listing row; Value is anything
// encoding/json can encode, Text its form in tables (default fmt %v).
type Field struct {
	Key   string
	Value any
	Text  string
	// Free marks free text (a state's values) that a table on a narrow
	// terminal may cut; data, stream, type and other names always are.
	Free bool
}

// Printer writes events and listing rows in one output format. It is the
// only place that formats output; every command prints through one.
type Printer struct {
	w      *bufio.Writer
	jq     *JQ
	color  bool
	format string
	tmpl   *template.Template
	tty    bool
	width  int        // the terminal's, which tables fit; 0: none
	rows   [][]string // table rows, rendered by Flush
	table  *table     // set by the first row; keeps its widths (table.go)
	// headerDone: a table rendered in parts (tail -f) has its header
	// once, at the top.
	headerDone bool
	// empty is what a table on a terminal says when it has no rows.
	empty  string
	anyRow bool
	buf    []byte
	docs   int
}

// NewPrinter parses format (json, pretty, table, yaml, template=TEXT, or
// "" for automatic) for output to w; tty says whether w is a terminal.
func NewPrinter(w io.Writer, format string, tty bool) (*Printer, error) {
	p := &Printer{w: bufio.NewWriterSize(w, 64<<10), format: format, tty: tty}
	switch {
	case format == FormatAuto, format == FormatJSON, format == FormatPretty, format == FormatTable, format == FormatYAML, format == FormatPrometheus:
	case strings.HasPrefix(format, "template="):
		t, err := parseOutputTemplate(strings.TrimPrefix(format, "template="))
		if err != nil {
			return nil, err
		}
		p.format, p.tmpl = FormatTemplate, t
	default:
		return nil, fmt.Errorf("invalid output format %q (want json, pretty, table, yaml or template=GO-TEMPLATE)", format)
	}
	return p, nil
}

// SetWidth makes tables fit a terminal of n columns (0: no limit). The
// caller sets it only when stdout is a terminal.
func (p *Printer) SetWidth(n int) { p.width = n }

// SetEmpty sets what a listing prints on a terminal when it has no rows
// ("No streams match 'zzz*'."); piped, an empty listing prints nothing.
func (p *Printer) SetEmpty(msg string) { p.empty = msg }

// SetColor allows ANSI colour (bold table headers); the caller decides:
// only on a terminal, never with NO_COLOR.
func (p *Printer) SetColor(on bool) { p.color = on }

// SetJQ filters every printed document through a jq expression (--jq):
// each result prints as a line, strings raw (as gh does), other values
// as JSON (indented with -o pretty).
func (p *Printer) SetJQ(j *JQ) { p.jq = j }

// Tabular reports whether listing rows will render as a table (a
// terminal, or -o table) rather than as lines.
func (p *Printer) Tabular() bool {
	return p.jq == nil && (p.format == FormatTable || p.format == FormatAuto && p.tty)
}

// Format is the parsed format name ("" for automatic).
func (p *Printer) Format() string { return p.format }

// Record prints one event straight from its record: in NDJSON (the
// automatic format) without building an Event.
func (p *Printer) Record(r *codec.Record) error {
	if p.jq == nil && (p.format == FormatAuto || p.format == FormatJSON) {
		p.buf = codec.AppendRecordJSON(p.buf[:0], r)
		p.buf = append(p.buf, '\n')
		_, err := p.w.Write(p.buf)
		return err
	}
	e := r.Event()
	return p.Event(&e)
}

// Event prints one event. Automatic format is NDJSON: events are data.
func (p *Printer) Event(e *codec.Event) error {
	if p.jq != nil || p.format == FormatTemplate {
		v, err := eventValue(e)
		if err != nil {
			return err
		}
		return p.value(v)
	}
	switch p.format {
	case FormatAuto, FormatJSON:
		p.buf = codec.AppendEventJSON(p.buf[:0], e)
		p.buf = append(p.buf, '\n')
		_, err := p.w.Write(p.buf)
		return err
	case FormatTable:
		return p.Row([]Field{
			{Key: "position", Value: e.Position},
			{Key: "stream", Value: e.Stream},
			{Key: "version", Value: e.Version},
			{Key: "type", Value: e.Type},
			{Key: "time", Value: e.Time},
			{Key: "data", Value: json.RawMessage(e.Data), Text: string(e.Data)},
		})
	}
	p.buf = codec.AppendEventJSON(p.buf[:0], e)
	return p.JSON(p.buf)
}

// JSON prints one JSON document in the printer's format (pretty, yaml,
// template, or compact JSON for table and automatic).
func (p *Printer) JSON(doc []byte) error {
	if p.jq != nil || p.format == FormatTemplate {
		v, err := codec.DecodeJSON(doc) // exact numbers: 1234567, not 1.234567e+06
		if err != nil {
			return err
		}
		return p.value(v)
	}
	switch p.format {
	case FormatPretty:
		var out bytes.Buffer
		if err := json.Indent(&out, doc, "", "  "); err != nil {
			return err
		}
		out.WriteByte('\n')
		_, err := p.w.Write(out.Bytes())
		return err
	case FormatYAML:
		return p.yaml(doc)
	}
	if _, err := p.w.Write(doc); err != nil {
		return err
	}
	return p.w.WriteByte('\n')
}

// value prints a decoded document through the jq expression or the
// template, the two outputs that work on values rather than bytes.
func (p *Printer) value(v any) error {
	if p.jq != nil {
		return p.jq.Run(v, p.jqResult)
	}
	return executeTemplate(p.w, p.tmpl, v)
}

// eventValue is codec.DecodeJSON(codec.AppendEventJSON(e)), built without
// the round trip, and with the data and metadata decoded on their own: an
// event whose data nests codec.MaxJSONDepth deep (which append accepts)
// still prints, though its envelope is one level deeper.
func eventValue(e *codec.Event) (any, error) {
	data, err := codec.DecodeJSON(e.Data)
	if err != nil {
		return nil, err
	}
	m := map[string]any{
		"position": json.Number(strconv.FormatUint(e.Position, 10)),
		"stream":   e.Stream,
		"version":  json.Number(strconv.FormatUint(e.Version, 10)),
		"type":     e.Type,
		"time":     e.Time.UTC().Format(codec.TimeFormat),
		"id":       e.ID,
		"data":     data,
	}
	if len(e.Metadata) > 0 {
		if m["metadata"], err = codec.DecodeJSON(e.Metadata); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// yaml prints a JSON document as a YAML document. JSON is YAML: decoding
// into a node keeps the key order.
func (p *Printer) yaml(doc []byte) error {
	var node yaml.Node
	if err := yaml.Unmarshal(doc, &node); err != nil {
		return err
	}
	blockStyle(&node)
	if p.docs > 0 {
		p.w.WriteString("---\n")
	}
	p.docs++
	enc := yaml.NewEncoder(p.w)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return err
	}
	return enc.Close()
}

func (p *Printer) jqResult(v any) error {
	if str, ok := v.(string); ok {
		p.w.WriteString(str)
		return p.w.WriteByte('\n')
	}
	var b []byte
	var err error
	if p.format == FormatYAML {
		if b, err = json.Marshal(v); err != nil {
			return err
		}
		return p.yaml(b)
	}
	if p.format == FormatPretty {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	p.w.Write(b)
	return p.w.WriteByte('\n')
}

// Flushed writes out what is buffered: a follower calls it after every
// event so each line appears as it is printed. Pending table rows are
// rendered too; later renders leave the header out.
func (p *Printer) Flushed() error { return p.Flush() }

// Row prints one row of a listing: a table row on a terminal (or with -o
// table), a tab-separated line when piped, otherwise one JSON object.
func (p *Printer) Row(fields []Field) error {
	if p.jq != nil {
		p.buf = AppendRowJSON(p.buf[:0], fields)
		return p.JSON(p.buf)
	}
	switch p.format {
	case FormatAuto, FormatTable, FormatTSV:
		p.anyRow = true
		texts := make([]string, len(fields))
		if p.format == FormatTable || p.format == FormatAuto && p.tty {
			if p.table == nil {
				p.table = newTable(fields)
			}
			for i, f := range fields {
				texts[i] = p.tableText(f)
			}
			p.rows = append(p.rows, texts)
			return nil
		}
		for i, f := range fields {
			texts[i] = oneLine(f.plainText())
		}
		_, err := p.w.WriteString(strings.Join(texts, "\t") + "\n")
		return err
	}
	p.buf = AppendRowJSON(p.buf[:0], fields)
	return p.JSON(p.buf)
}

// ShortTime is how a table on a terminal shows a time: to the
// millisecond, still UTC and RFC 3339 (-o json keeps nanoseconds).
const ShortTime = "2006-01-02T15:04:05.000Z07:00"

// tableText is a field's text in a table: its Text, and times shorter on
// a terminal.
func (p *Printer) tableText(f Field) string {
	if t, ok := f.Value.(time.Time); ok && f.Text == "" && p.tty && !t.IsZero() {
		return t.UTC().Format(ShortTime)
	}
	return f.text()
}

// plainText is a field's text in a tab-separated row, for scripts: its
// Text, except that a fraction (lag_seconds) prints as the number it is
// in JSON, not as the human duration a table shows ("1.5s"); a count of
// seconds or bytes keeps the text its command chose ("30d", "10.0 GiB").
func (f Field) plainText() string {
	if v, ok := f.Value.(float64); ok {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return f.text()
}

func (f Field) text() string {
	if f.Text != "" {
		return f.Text
	}
	switch v := f.Value.(type) {
	case nil:
		return ""
	case string:
		return v
	case time.Time:
		if v.IsZero() {
			return ""
		}
		return v.Format(codec.TimeFormat)
	}
	return fmt.Sprint(f.Value)
}

// Flush renders a pending table and flushes buffered output. A listing
// without rows says so on a terminal (SetEmpty).
func (p *Printer) Flush() error {
	if len(p.rows) > 0 {
		bold := p.color && !p.headerDone
		p.w.WriteString(p.table.render(p.rows, !p.headerDone, p.width, bold))
		p.headerDone = true
		p.rows = nil
	}
	if !p.anyRow && p.empty != "" && p.tty && p.jq == nil && (p.format == FormatAuto || p.format == FormatTable) {
		p.w.WriteString(p.empty + "\n")
		p.empty = ""
	}
	return p.w.Flush()
}

// blockStyle clears the flow style that parsing JSON leaves on every node,
// so YAML output reads as block YAML rather than JSON in disguise.
func blockStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle | yaml.DoubleQuotedStyle
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// AppendRowJSON encodes fields as one JSON object, keys in order.
func AppendRowJSON(dst []byte, fields []Field) []byte {
	dst = append(dst, '{')
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = codec.AppendJSONString(dst, f.Key)
		dst = append(dst, ':')
		switch v := f.Value.(type) {
		case string:
			dst = codec.AppendJSONString(dst, v)
		case uint64:
			dst = strconv.AppendUint(dst, v, 10)
		case int:
			dst = strconv.AppendInt(dst, int64(v), 10)
		case time.Time:
			if v.IsZero() {
				dst = append(dst, "null"...)
			} else {
				dst = codec.AppendJSONString(dst, v.Format(codec.TimeFormat))
			}
		case json.RawMessage:
			dst = append(dst, v...)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				b = []byte("null")
			}
			dst = append(dst, b...)
		}
	}
	return append(dst, '}')
}
