package cmd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestCommandDocs checks that every command explains itself: a Long
// description, and examples unless it only groups subcommands or is a
// help topic.
func TestCommandDocs(t *testing.T) {
	ios, _, _, _ := newTestIOStreams()
	for _, c := range visibleCommands(newRootCmd(ios)) {
		if strings.TrimSpace(c.Long) == "" {
			t.Errorf("%s has no Long description", c.CommandPath())
		}
		if c.IsAdditionalHelpTopicCommand() || c.HasAvailableSubCommands() {
			continue
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
	}
}

// exampleFiles are the files the examples name, made in each example's
// work directory.
var exampleFiles = map[string]string{
	"order.json": `{"item":"book","qty":1}`,
	"backup.ndjson": `{"position":1,"stream":"account-9","version":1,"type":"Deposited","time":"2026-11-01T10:00:00Z","id":"01JDX0000000000000000000AA","data":{"amount":5}}
`,
	"order.yaml": `init: {status: new, paid: 0}
on:
  Placed: '.status = "placed" | .item = $event.data.item'
  Paid: '.paid += $event.data.amount | .status = "paid"'
  Shipped: '.status = "shipped"'
`,
}

// exampleStore is the store every example runs against, fresh for each:
// positions 1-6, account-7 at version 1, order-42 at version 3, three
// groups, and mailer (--ordering none) holding positions 3 and 4 unacked
// (--manual-ack), with 5 and 6 still to deliver.
var exampleStore = [][]string{
	{"append", "account-7", "Deposited", `{"amount":100}`},
	{"append", "account-8", "Deposited", `{"amount":30}`},
	{"append", "order-1", "Placed", `{"item":"book","qty":1}`},
	{"append", "order-42", "Placed", `{"item":"lamp","qty":2}`},
	{"append", "order-42", "Paid", `{"amount":40}`},
	{"append", "order-42", "Shipped", `{"carrier":"post"}`},
	{"group", "create", "billing", "order-*", "--from", "start"},
	{"group", "create", "audit", "--from", "start"},
	{"group", "create", "mailer", "order-*", "--from", "start", "--ordering", "none"},
	{"consume", "mailer", "--manual-ack", "--count", "2"},
}

// unrunnableExamples are example lines that are right but cannot succeed
// against a store made by the test, with the reason.
var unrunnableExamples = map[string]string{
	"evt fold order-42 --spec order.yaml --at @2026-11-01":         "needs events older than 2026-11-01, and a test cannot backdate events",
	"evt bench --store nats://127.0.0.1:4222/BENCH --events 20000": "needs a nats-server on 127.0.0.1:4222 (TestBenchNats runs it on an embedded one)",
	"evt schema show Deposited":                                    "needs the schema that schema set's example sets through a pipe (schema.txtar shows and removes schemas)",
	"evt schema rm Deposited":                                      "needs the schema that schema set's example sets through a pipe (schema.txtar shows and removes schemas)",
}

// TestExamples runs the examples of every command (and the example lines
// of the help topics) against exampleStore: each line that starts with
// "evt " and needs no shell (no pipe, redirection, variable, ./script or
// missing file) runs in the test process, and must exit 0, or the code its
// comment gives ("# exit 3" or "# ...: exit 3"). Examples that follow the
// log forever (tail -f, consume without --once or --count) get a poke (an
// event appended to the fixture streams) and are then interrupted: they
// must exit 130. The lines it cannot run are logged with the reason.
func TestExamples(t *testing.T) {
	ios, _, _, _ := newTestIOStreams()
	var skipped []string
	ran := 0
	for _, c := range visibleCommands(newRootCmd(ios)) {
		text := c.Example
		if c.IsAdditionalHelpTopicCommand() {
			text = c.Long
		}
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "evt ") && line != "evt" {
				if strings.Contains(line, "evt ") && !c.IsAdditionalHelpTopicCommand() {
					skipped = append(skipped, fmt.Sprintf("%s: %q: does not start with evt", c.CommandPath(), line))
				}
				continue
			}
			ex, why := parseExample(line)
			if why == "" {
				why = unrunnableExamples[line]
			}
			if why != "" {
				skipped = append(skipped, fmt.Sprintf("%s: %q: %s", c.CommandPath(), line, why))
				continue
			}
			ran++
			t.Run(strings.Join(ex.args, " "), func(t *testing.T) {
				if why := runExample(t, ex); why != "" {
					t.Skip(why)
				}
			})
		}
	}
	if ran < 30 {
		t.Errorf("ran only %d examples", ran)
	}
	for _, s := range skipped {
		t.Logf("not run: %s", s)
	}
}

// example is one runnable example line.
type example struct {
	args []string // after "evt"
	want int      // the exit code
}

var exitComment = regexp.MustCompile(`(?:^|: )exit (\d+)(?::|$)`)

// parseExample splits an example line into words as sh would, or says why
// it needs a shell. A comment may give the exit code.
func parseExample(line string) (example, string) {
	if strings.Contains(line, "./") {
		return example{}, "runs a local script"
	}
	var words []string
	var word strings.Builder
	inWord := false
	comment := ""
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case ch == '#' && !inWord:
			comment = strings.TrimSpace(line[i+1:])
			i = len(line)
		case ch == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return example{}, "unbalanced quote"
			}
			word.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case ch == '"':
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				switch line[j] {
				case '\\':
					j++
					word.WriteByte(line[j])
				case '$', '`':
					return example{}, "needs shell expansion"
				default:
					word.WriteByte(line[j])
				}
			}
			if j == len(line) {
				return example{}, "unbalanced quote"
			}
			i = j
			inWord = true
		case strings.IndexByte("|<>", ch) >= 0:
			return example{}, "needs a shell pipe or redirection"
		case strings.IndexByte("$`;&(){}*?[]~\\", ch) >= 0:
			return example{}, "needs a shell"
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	ex := example{args: words[1:]}
	if m := exitComment.FindStringSubmatch(comment); m != nil {
		ex.want, _ = strconv.Atoi(m[1])
	}
	return ex, ""
}

// waits reports whether an example waits for new events (-f, consume):
// it is given some, whether or not it then ends by itself (--count).
func (ex example) waits() bool {
	if len(ex.args) == 0 {
		return false
	}
	for _, a := range ex.args {
		if a == "-f" || a == "--follow" {
			return ex.args[0] == "tail" || ex.args[0] == "fold"
		}
		if a == "--once" {
			return false
		}
	}
	return ex.args[0] == "consume"
}

// follows reports whether an example runs until interrupted.
func (ex example) follows() bool {
	has := func(flags ...string) bool {
		for _, a := range ex.args {
			for _, f := range flags {
				if a == f || strings.HasPrefix(a, f+"=") {
					return true
				}
			}
		}
		return false
	}
	if len(ex.args) == 0 || has("--count", "--timeout", "--once") {
		return false
	}
	switch ex.args[0] {
	case "tail", "fold":
		return has("-f", "--follow")
	case "consume":
		return true
	}
	return false
}

// runExample runs ex in a fresh work directory with a fresh store, or
// returns why it cannot.
func runExample(t *testing.T, ex example) string {
	work := t.TempDir()
	t.Chdir(work)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "EVT_") {
			t.Setenv(k, "")
		}
	}
	t.Setenv("HOME", filepath.Join(work, ".home"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(work, ".home", "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(work, ".home", "config"))
	for name, text := range exampleFiles {
		if err := os.WriteFile(name, []byte(text), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range ex.args {
		if name := exampleFileArg(a); name != "" {
			if _, err := os.Stat(name); err != nil {
				return fmt.Sprintf("names a file that does not exist: %s", name)
			}
		}
	}
	for i, a := range ex.args {
		if a == "--exec" && i+1 < len(ex.args) {
			prog := strings.Fields(ex.args[i+1])[0]
			if _, err := exec.LookPath(prog); err != nil {
				return fmt.Sprintf("--exec needs %s, which is not installed", prog)
			}
		}
	}
	// The example's own group create finds no group of that name.
	newGroup := ""
	if len(ex.args) > 2 && ex.args[0] == "group" && ex.args[1] == "create" {
		newGroup = ex.args[2]
	}
	for _, step := range exampleStore {
		if step[0] == "group" && step[2] == newGroup || step[0] == "consume" && step[1] == newGroup {
			continue
		}
		if code, out := runQuiet(context.Background(), append(step, "--sync", "none")...); code != 0 {
			t.Fatalf("preparing the store: evt %s: exit %d\n%s", strings.Join(step, " "), code, out)
		}
	}

	ios, _, out, errOut := newTestIOStreams()
	ios.SetStdinTTY(true) // a terminal with nothing typed

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, ios, ex.args) }()

	var code int
	if ex.waits() || ex.follows() || ex.want == exitInterrupted {
		time.Sleep(300 * time.Millisecond)
		for _, stream := range []string{"account-7", "order-1", "order-42"} {
			if c, out := runQuiet(context.Background(), "append", stream, "Poked"); c != 0 {
				t.Fatalf("poke: exit %d\n%s", c, out)
			}
		}
		time.Sleep(300 * time.Millisecond)
		if ex.follows() || ex.want == exitInterrupted {
			cancel()
		}
	}
	select {
	case code = <-done:
	case <-time.After(20 * time.Second):
		cancel()
		<-done
		t.Fatalf("still running after 20s")
	}
	want := ex.want
	if ex.follows() {
		want = exitInterrupted
	}
	if code != want {
		t.Errorf("evt %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(ex.args, " "), code, want, out, errOut)
	}
	return ""
}

// runQuiet runs evt in the test process and returns its exit code and
// its output.
func runQuiet(ctx context.Context, args ...string) (int, string) {
	ios, _, out, errOut := newTestIOStreams()
	ios.SetStdinTTY(true)
	code := run(ctx, ios, args)
	return code, out.String() + errOut.String()
}

// exampleFileArg is the file an argument names (@FILE, or a name with the
// extension of an input file), or "".
func exampleFileArg(a string) string {
	a = strings.TrimPrefix(a, "@")
	for _, ext := range []string{".json", ".ndjson", ".yaml", ".yml"} {
		if strings.HasSuffix(a, ext) && !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return ""
}

// visibleCommands is root and every command under it that --help shows
// or lists as a help topic.
func visibleCommands(root *cobra.Command) []*cobra.Command {
	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Deprecated != "" {
			return
		}
		all = append(all, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return all
}
