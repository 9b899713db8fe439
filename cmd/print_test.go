package cmd

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// runEvtTerminal runs one command line in process with stdout acting as a
// terminal or not, and colour on or off, as System would decide them.
func runEvtTerminal(t *testing.T, tty, color bool, args ...string) (stdout, stderr string) {
	t.Helper()
	ios, _, out, errOut := newTestIOStreams()
	ios.SetStdoutTTY(tty)
	ios.SetColorEnabled(color)
	if code := run(context.Background(), ios, args); code != 0 {
		t.Fatalf("evt %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out.String(), errOut.String()
}

// seedStore appends a few events to the isolated store.
func seedStore(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"append", "account-1", "Opened", `{"owner":"ann"}`, "--id", "id-1"},
		{"append", "account-10", "Opened", `{"owner":"bob"}`, "--id", "id-2"},
		{"append", "account-1", "Deposited", `{"amount":5}`, "--meta", `{"c":"c-1"}`, "--id", "id-3"},
	} {
		if code, _, errOut := runEvt(t, args...); code != 0 {
			t.Fatalf("evt %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
	}
}

// timePattern matches a store time as JSON and pipes print it (RFC 3339
// with nanoseconds) and as a table on a terminal does (milliseconds).
var timePattern = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.(\d{9}|\d{3})Z`)

// withoutTimes replaces every store time by TIME, the one thing that varies.
func withoutTimes(s string) string { return timePattern.ReplaceAllString(s, "TIME") }

// TestListingOutput: a listing (evt streams) prints an aligned table with
// a header on a terminal, bold only when colour is on, and plain
// tab-separated rows without a header when piped (CLI.md, "Everywhere").
func TestListingOutput(t *testing.T) {
	isolate(t)
	seedStore(t)
	tests := []struct {
		name       string
		tty, color bool
		args       []string
		want       string
	}{
		{
			name: "terminal",
			tty:  true,
			args: []string{"streams"},
			want: "STREAM      VERSION  LAST_POSITION  LAST_TYPE  LAST_TIME\n" +
				"account-1   2        3              Deposited  TIME\n" +
				"account-10  1        2              Opened     TIME\n",
		},
		{
			name: "colour terminal",
			tty:  true, color: true,
			args: []string{"streams"},
			want: "\x1b[1mSTREAM      VERSION  LAST_POSITION  LAST_TYPE  LAST_TIME\x1b[0m\n" +
				"account-1   2        3              Deposited  TIME\n" +
				"account-10  1        2              Opened     TIME\n",
		},
		{
			name: "piped",
			args: []string{"streams"},
			want: "account-1\t2\t3\tDeposited\tTIME\n" +
				"account-10\t1\t2\tOpened\tTIME\n",
		},
		{
			name: "piped glob",
			args: []string{"streams", "account-1*"},
			want: "account-1\t2\t3\tDeposited\tTIME\n" +
				"account-10\t1\t2\tOpened\tTIME\n",
		},
		{
			name: "terminal one stream",
			tty:  true,
			args: []string{"streams", "account-10"},
			want: "STREAM      VERSION  LAST_POSITION  LAST_TYPE  LAST_TIME\n" +
				"account-10  1        2              Opened     TIME\n",
		},
		{
			name: "piped -o table",
			args: []string{"streams", "-o", "table"},
			want: "STREAM      VERSION  LAST_POSITION  LAST_TYPE  LAST_TIME\n" +
				"account-1   2        3              Deposited  TIME\n" +
				"account-10  1        2              Opened     TIME\n",
		},
		{
			name: "terminal -o json",
			tty:  true, color: true,
			args: []string{"streams", "-o", "json"},
			want: `{"stream":"account-1","version":2,"last_position":3,"last_type":"Deposited","last_time":"TIME"}` + "\n" +
				`{"stream":"account-10","version":1,"last_position":2,"last_type":"Opened","last_time":"TIME"}` + "\n",
		},
		{
			name: "terminal --jq",
			tty:  true, color: true,
			args: []string{"streams", "--jq", ".stream"},
			want: "account-1\naccount-10\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut := runEvtTerminal(t, tt.tty, tt.color, tt.args...)
			if errOut != "" {
				t.Errorf("stderr: %q", errOut)
			}
			if got := withoutTimes(out); got != tt.want {
				t.Errorf("evt %s (tty=%v, colour=%v):\n got: %q\nwant: %q", strings.Join(tt.args, " "), tt.tty, tt.color, got, tt.want)
			}
		})
	}
}

// TestEventsStayNDJSON: events are data, so tail and replay print NDJSON on
// a terminal as when piped, byte for byte, with no colour; only an
// explicit -o table makes a table of them.
func TestEventsStayNDJSON(t *testing.T) {
	isolate(t)
	seedStore(t)
	for _, args := range [][]string{
		{"tail"},
		{"tail", "account-1", "-n", "1"},
		{"replay"},
		{"replay", "account-*", "--type", "Opened"},
	} {
		piped, _ := runEvtTerminal(t, false, false, args...)
		onTTY, _ := runEvtTerminal(t, true, true, args...)
		if onTTY != piped {
			t.Errorf("evt %s: terminal output differs from piped:\nterminal: %q\n   piped: %q", strings.Join(args, " "), onTTY, piped)
		}
		if strings.Contains(onTTY, "\x1b") {
			t.Errorf("evt %s: colour in event output: %q", strings.Join(args, " "), onTTY)
		}
		lines := strings.Split(strings.TrimSuffix(onTTY, "\n"), "\n")
		for _, line := range lines {
			if !json.Valid([]byte(line)) || !strings.HasPrefix(line, `{"position":`) {
				t.Errorf("evt %s: not an NDJSON envelope: %q", strings.Join(args, " "), line)
			}
		}
	}

	out, _ := runEvtTerminal(t, true, false, "replay")
	want := `{"position":1,"stream":"account-1","version":1,"type":"Opened","time":"TIME","id":"id-1","data":{"owner":"ann"}}` + "\n" +
		`{"position":2,"stream":"account-10","version":1,"type":"Opened","time":"TIME","id":"id-2","data":{"owner":"bob"}}` + "\n" +
		`{"position":3,"stream":"account-1","version":2,"type":"Deposited","time":"TIME","id":"id-3","data":{"amount":5},"metadata":{"c":"c-1"}}` + "\n"
	if got := withoutTimes(out); got != want {
		t.Errorf("evt replay on a terminal:\n got: %q\nwant: %q", got, want)
	}
}

// TestEventTable: -o table prints events as a table with the header of
// CLI.md, bold on a colour terminal and plain otherwise.
func TestEventTable(t *testing.T) {
	isolate(t)
	seedStore(t)
	const rows = "1         account-1   1        Opened     TIME  {\"owner\":\"ann\"}\n" +
		"2         account-10  1        Opened     TIME  {\"owner\":\"bob\"}\n" +
		"3         account-1   2        Deposited  TIME  {\"amount\":5}\n"
	// TIME stands for 30 characters piped (nanoseconds) and 24 on a
	// terminal (milliseconds), so the header's TIME column is padded to
	// that width.
	const header = "POSITION  STREAM      VERSION  TYPE       TIME                            DATA"
	const ttyHeader = "POSITION  STREAM      VERSION  TYPE       TIME                      DATA"
	tests := []struct {
		name       string
		tty, color bool
		want       string
	}{
		{"piped", false, false, header + "\n" + rows},
		{"terminal", true, false, ttyHeader + "\n" + rows},
		{"colour terminal", true, true, "\x1b[1m" + ttyHeader + "\x1b[0m\n" + rows},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := runEvtTerminal(t, tt.tty, tt.color, "replay", "-o", "table")
			if got := withoutTimes(out); got != tt.want {
				t.Errorf("evt replay -o table:\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
}

// TestFormatsIgnoreTerminal: an explicit -o other than table prints the
// same whether stdout is a terminal or not, for events and listings.
func TestFormatsIgnoreTerminal(t *testing.T) {
	isolate(t)
	seedStore(t)
	for _, format := range []string{"json", "pretty", "yaml", "template={{.stream}}"} {
		for _, command := range []string{"replay", "streams"} {
			args := []string{command, "-o", format}
			piped, _ := runEvtTerminal(t, false, false, args...)
			onTTY, _ := runEvtTerminal(t, true, true, args...)
			if onTTY != piped {
				t.Errorf("evt %s: terminal output differs from piped:\nterminal: %q\n   piped: %q", strings.Join(args, " "), onTTY, piped)
			}
			if piped == "" {
				t.Errorf("evt %s: no output", strings.Join(args, " "))
			}
		}
	}
}
