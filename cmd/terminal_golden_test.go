package cmd

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// runEvtWidth runs evt with stdout a fake terminal of width columns (no
// colour) and returns what it printed there.
func runEvtWidth(t *testing.T, width int, args ...string) string {
	t.Helper()
	ios, _, out, errOut := newTestIOStreams()
	ios.SetStdoutTTY(true)
	ios.SetTerminalWidth(width)
	if code := run(context.Background(), ios, args); code != 0 {
		t.Fatalf("evt %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out.String()
}

// TestTablesGolden: listings and event tables as a person sees them on
// terminals of 40, 80 and 160 columns: aligned by display width (CJK,
// emoji), fitted by cutting the widest free-text column with "…", times
// to the millisecond, empty listings saying so.
func TestTablesGolden(t *testing.T) {
	isolate(t)
	long := strings.Repeat("a-very-long-stream-name-", 9) + "end" // 219 bytes
	for _, args := range [][]string{
		{"append", "account-1", "Opened", `{"owner":"ann"}`},
		{"append", "account-1", "Deposited", `{"amount":5}`},
		{"append", "注文-7", "Placed", `{"item":"茶","qty":2}`},
		{"append", "rocket-🚀", "Launched", `{"note":"` + strings.Repeat("x", 3000) + `"}`},
		{"append", long, "Opened", `{}`},
	} {
		if code, _, errOut := runEvt(t, args...); code != 0 {
			t.Fatalf("evt %s: exit %d: %s", args[0], code, errOut)
		}
	}
	commands := [][]string{
		{"streams"},
		{"streams", "zzz*"},
		{"replay", "-o", "table"},
		{"fold", "*"},
	}
	for _, w := range terminalWidths {
		var b strings.Builder
		for _, args := range commands {
			fmt.Fprintf(&b, "$ evt %s\n%s\n", strings.Join(args, " "), withoutTimes(runEvtWidth(t, w, args...)))
		}
		checkGolden(t, fmt.Sprintf("tables-%d.txt", w), b.String())
	}
	// Piped, an empty listing prints nothing.
	if code, out, _ := runEvt(t, "streams", "zzz*"); code != 0 || out != "" {
		t.Errorf("evt streams 'zzz*' piped: exit %d, %q; want nothing", code, out)
	}
}
