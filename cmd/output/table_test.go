package output

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-runewidth"

	"github.com/evtdev/evt/codec"
)

// TestTableStreamingKeepsWidths: a table printed in parts (tail -f -o
// table) keeps the widths of its first part, so every row lines up; a
// wider free-text cell later is cut, a wider number runs over.
func TestTableStreamingKeepsWidths(t *testing.T) {
	var out bytes.Buffer
	p, err := NewPrinter(&out, FormatTable, true)
	if err != nil {
		t.Fatal(err)
	}
	row := func(stream string, version uint64, data string) {
		if err := p.Row([]Field{{Key: "stream", Value: stream}, {Key: "version", Value: version}, {Key: "data", Value: data}}); err != nil {
			t.Fatal(err)
		}
		if err := p.Flushed(); err != nil {
			t.Fatal(err)
		}
	}
	row("account-1", 1, `{"a":1}`)
	row("account-123456", 22, `{"a":2}`)
	row("a", 1234567890123, `{"a":3}`)
	want := "STREAM     VERSION  DATA\n" +
		"account-1  1        {\"a\":1}\n" +
		"account-…  22       {\"a\":2}\n" +
		"a          1234567890123  {\"a\":3}\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestTableFitsWidth: on a terminal, the widest free-text column is cut
// with "…" until the table fits; numbers and times are never cut.
func TestTableFitsWidth(t *testing.T) {
	e := &codec.Event{Position: 1, Stream: "account-7", Version: 1, Type: "Deposited",
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), Data: []byte(`{"note":"` + strings.Repeat("x", 3000) + `"}`)}
	long := *e
	long.Stream = strings.Repeat("very-long-stream-name-", 10)
	// (At 40 columns an event table cannot fit: its position, version
	// and time alone take 41; the free columns go to their minimum and
	// the terminal wraps. The golden tests in cmd show it.)
	for _, width := range []int{80, 160} {
		var out bytes.Buffer
		p, _ := NewPrinter(&out, FormatTable, true)
		p.SetWidth(width)
		p.Event(e)
		p.Event(&long)
		p.Flush()
		for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if w := runewidth.StringWidth(line); w > width {
				t.Errorf("width %d: a line of %d columns: %q", width, w, line)
			}
		}
		if !strings.Contains(out.String(), "2026-01-02T03:04:05.006Z") {
			t.Errorf("width %d: the time is cut or long:\n%s", width, out.String())
		}
	}
}

// TestTableWideCharacters: columns line up by terminal columns, not
// bytes or runes: a CJK character and an emoji take two.
func TestTableWideCharacters(t *testing.T) {
	var out bytes.Buffer
	p, _ := NewPrinter(&out, FormatTable, false)
	for _, s := range []string{"注文-1", "🚀-2", "abc-3", "שלום-4"} {
		p.Row([]Field{{Key: "stream", Value: s}, {Key: "version", Value: uint64(1)}})
	}
	p.Flush()
	want := "STREAM  VERSION\n注文-1  1\n🚀-2    1\nabc-3   1\nשלום-4  1\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestEmptyListing: a listing with no rows says so on a terminal and
// prints nothing into a pipe or as JSON.
func TestEmptyListing(t *testing.T) {
	for _, tt := range []struct {
		format string
		tty    bool
		want   string
	}{
		{FormatAuto, true, "No groups.\n"},
		{FormatTable, true, "No groups.\n"},
		{FormatAuto, false, ""},
		{FormatTable, false, ""},
		{FormatJSON, true, ""},
	} {
		var out bytes.Buffer
		p, _ := NewPrinter(&out, tt.format, tt.tty)
		p.SetEmpty("No groups.")
		p.Flush()
		if out.String() != tt.want {
			t.Errorf("-o %q tty=%v: got %q, want %q", tt.format, tt.tty, out.String(), tt.want)
		}
	}
}

// TestLagSeconds: a fraction of seconds is a number in JSON and piped,
// and its Text (a human duration) only in a table.
func TestLagSeconds(t *testing.T) {
	f := []Field{{Key: "name", Value: "g"}, {Key: "lag_seconds", Value: 1.5, Text: "1.5s"}}
	for _, tt := range []struct {
		format string
		tty    bool
		want   string
	}{
		{FormatAuto, false, "g\t1.5\n"},
		{FormatJSON, false, `{"name":"g","lag_seconds":1.5}` + "\n"},
		{FormatAuto, true, "NAME  LAG_SECONDS\ng     1.5s\n"},
	} {
		var out bytes.Buffer
		p, _ := NewPrinter(&out, tt.format, tt.tty)
		p.Row(f)
		p.Flush()
		if out.String() != tt.want {
			t.Errorf("-o %q tty=%v: got %q, want %q", tt.format, tt.tty, out.String(), tt.want)
		}
	}
}
