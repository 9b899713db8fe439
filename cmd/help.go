package cmd

import (
	"strings"

	"github.com/spf13/cobra"
)

// Help topics: `evt help exit-codes`, `evt help cursors`, `evt help
// formats`. Each is a cobra "additional help topic", a command with a Long
// text and no Run, which `evt --help` lists under "Additional help topics"
// and `evt help TOPIC` (or `evt TOPIC`) prints, exiting 0.
//
// Lines of a topic that start with "evt " are examples: TestExamples runs
// them, and a trailing "# ... exit N" comment is the exit code they must
// give. Indented blocks are indented four spaces and follow a blank line
// so that man pages and markdown (evt docs) keep them preformatted.

// helpTopics are the topics in the order `evt --help` lists them.
var helpTopics = []*cobra.Command{
	{
		Use:   "exit-codes",
		Short: "What evt's exit codes mean",
		Long: `Every evt command exits with one of these codes, so a script can tell
what happened without reading the message. An error prints as one line
on stderr that starts with "evt: "; stdout carries only results.

    0    ok: the command did what it was asked.
           evt tail account-7 -n 1

    1    error: anything not listed below, such as invalid JSON in DATA or
         on stdin, a reducer that failed, a damaged store, an --exec command
         that failed, or a group behind --fail-if-lag.
           evt append account-7 Deposited '{"amount":'    # exit 1: not JSON

    2    usage: how evt was called: an unknown command or flag, a wrong
         number of arguments, a bad flag value (from the command line,
         EVT_<FLAG> or the config file), a bad stream or group name.
           evt tail account-7 --from yesterday            # exit 2: not a cursor

    3    expected-version conflict: append --expect did not match the
         stream's version, and nothing was written. Read again, retry.
           evt append account-7 Opened --expect none  # exit 3: it exists

    4    not found: the stream, the store or the consumer group does not
         exist (tail -f waits for a missing stream instead).
           evt tail no-such-stream                        # exit 4
           evt group show no-such-group                   # exit 4

    130  interrupted: SIGINT (^C) or SIGTERM stopped the command before it
         wrote anything (an append the signal ends reports as killed by
         it, which a shell shows as 130, or 143 for SIGTERM). A write that
         was already committed is reported and exits 0. A second signal
         kills a command at once.
           evt tail -f                                    # then ^C: exit 130

A script that retries on a conflict:

    until v=$(evt streams account-7 --jq .version)
          evt append account-7 Withdrawn '{"amount":20}' --expect "$v"; do
      [ $? -eq 3 ] || exit 1
    done`,
	},
	{
		Use:   "cursors",
		Short: "Selections (which streams) and cursors (where in the log)",
		Long: `A SELECTION picks the streams a command reads (tail, replay, fold,
streams, group create):

    account-7     one stream
    account-*     a glob: every stream whose name matches; * also matches /
    *             every stream
    (nothing)     every stream

The category of a stream is the part of its name before the first "-"
(account-7 is in category account), so 'account-*' selects a category.
Quote globs, or the shell expands them. --type T (repeatable) keeps only
events of type T.

A CURSOR says where reading starts (--from) or stops (replay --to,
inclusive), where a consumer group starts (group create --from) and where
it moves to (group reset --to):

    start                    the first retained event
    end, now                 after the last event: only new events
    1234                     global position 1234
    +N                       N events after the start of the selection
                             (+0 is its first event, +1 its second)
    -N                       N events before the end of the selection
                             (-1 is its last event)
    @2026-11-25T10:00:00Z    the first event at or after a time (RFC 3339)
    @2026-11-25              ... a date, midnight UTC
    @1764064800              ... unix seconds
    @-10m, @-2d, @-1d12h     ... a duration ago (d is 24 hours, w 7 days)
    stored                   a consumer group's committed position
                             (tail --from stored --group NAME)

A DURATION, in a cursor or in any duration flag (--max-age, --timeout,
--ack-wait, --fail-if-lag, --lock-timeout), is one or more numbers with
units, summed: Go's ns, us, ms, s, m, h, plus d (24h) and w (7d), as in
90s, 1.5h, 1h30m, 7d, 1d12h, 2w. None is negative, and none is longer
than 106751d23h47m16s (about 292 years). A time before 1678 or after 2261
is read as 1678 or 2262: no stored event is outside those years.

A position before the first retained event is noted on stderr, and
reading starts at the first one. tail --cursor-file FILE starts after the
position saved in FILE and saves the position of every event it prints, so
a script run again neither skips nor repeats an event.

Examples:

    evt tail 'account-*' --from @-1h --type Deposited
    evt tail account-7 --from -2            # the last 2 events of account-7
    evt tail order-42 --from +1             # all but the first of order-42
    evt replay --from 1 --to @-1m           # everything older than a minute
    evt tail --from stored --group billing  # where group billing stands
    evt group reset billing --to @2026-11-25 --dry-run`,
	},
	{
		Use:   "formats",
		Short: "Output formats: -o, --jq, the event envelope, terminals and colour",
		Long: `Events print as NDJSON, one envelope per line, by default, on a terminal
too: events are data. Listings (streams, group ls, config, and fold of a
selection) print an aligned table on a terminal and tab-separated rows when
piped.

Every command that prints takes:

    -o json                  one JSON document per line (NDJSON)
    -o pretty                indented JSON
    -o table                 an aligned table with a header
    -o yaml                  YAML documents separated by ---
    -o template=TEMPLATE     a Go text/template per document, over its JSON
                             fields: {{.stream}}, {{.data.amount}}, ...
    --jq EXPR                a jq expression (gojq) every document goes
                             through; each result prints on its own line,
                             strings raw, other values as JSON (indented
                             with -o pretty, YAML with -o yaml)

The event envelope, as -o json prints it:

    {"position":42,"stream":"account-7","version":3,"type":"Deposited",
     "time":"2026-11-25T22:00:00.123456789Z","id":"01JDX...",
     "data":{"amount":50},"metadata":{"correlation_id":"c-1"}}

    position    global, dense, starts at 1, never reused: the cursor
    stream      the stream's name
    version     the event's number in its stream, from 1 (a stream that
                does not exist is at version 0)
    type        the event type
    time        RFC 3339 with nanoseconds, UTC, set by the store at append
    id          unique event id: a ULID unless the producer gave one
    data        any JSON value
    metadata    any JSON value; left out when empty

Terminals and colour: tables and colour are for a terminal on stdout.
On a terminal a table fits its width: the widest free-text columns (data,
states, stream and type names) are cut with "…", times show milliseconds
(-o json keeps nanoseconds), and an empty listing says so; piped, it
prints nothing. EVT_FORCE_TTY=1 formats as for a terminal even through a
pipe (to see a table in less -R, or to test), COLUMNS=N gives it a width.
Colour (bold table headers) appears only on a terminal, and never when
NO_COLOR is set to a non-empty value or TERM is dumb. Progress bars of
long commands go to stderr when it is a terminal, and export draws none
when its events go to that same terminal.

Examples:

    evt tail -o 'template={{.stream}}@{{.version}} {{.type}}'
    evt tail account-7 --jq .data.amount
    evt streams -o yaml
    evt replay order-42 -o table
    EVT_FORCE_TTY=1 NO_COLOR=1 evt streams | less`,
	},
}

// builtinExamples are the examples of the commands cobra makes (help and
// completion), by command path; a command that has its own keeps it.
var builtinExamples = map[string]string{
	"evt help": `  evt help tail
  evt help group reset
  evt help cursors`,
	"evt completion bash": `  source <(evt completion bash)
  evt completion bash | sudo tee /etc/bash_completion.d/evt`,
	"evt completion zsh":        `  evt completion zsh > "${fpath[1]}/_evt"`,
	"evt completion fish":       `  evt completion fish > ~/.config/fish/completions/evt.fish`,
	"evt completion powershell": `  evt completion powershell | Out-String | Invoke-Expression`,
}

// addHelpTopics adds the help topics to root and completes the help of the
// commands cobra makes: they get examples, and the help command (which
// must exist: InitDefaultHelpCmd) completes topic names too, works with a
// broken config file, and makes `evt help nosuch` a usage error (exit 2)
// rather than cobra's usage text and exit 0.
func addHelpTopics(root *cobra.Command) {
	var fill func(c *cobra.Command)
	fill = func(c *cobra.Command) {
		if ex, ok := builtinExamples[c.CommandPath()]; ok && c.Example == "" {
			c.Example = ex
		}
		for _, sub := range c.Commands() {
			fill(sub)
		}
	}
	fill(root)
	for _, t := range helpTopics {
		// A fresh copy per tree: cobra keeps a command's parent in it.
		root.AddCommand(&cobra.Command{Use: t.Use, Short: t.Short, Long: t.Long})
	}
	help, _, err := root.Find([]string{"help"})
	if err != nil || help == root {
		return
	}
	help.Long = `Print the help of a command (its usage, flags and examples), or a help
topic: exit-codes, cursors or formats. "evt help" alone lists the commands
and topics; "evt COMMAND --help" is the same as "evt help COMMAND".`
	// Help reads no store and no config: a broken config file must not hide
	// the help that explains it (root's hook would load it).
	help.PersistentPreRunE = func(*cobra.Command, []string) error { return nil }
	help.Run = nil
	help.RunE = func(c *cobra.Command, args []string) error {
		cmd, rest, err := c.Root().Find(args)
		if err != nil || cmd == nil || len(rest) > 0 {
			return usageErrorf("unknown help topic %q (evt help lists the commands and topics)", strings.Join(args, " "))
		}
		cmd.InitDefaultHelpFlag()
		cmd.InitDefaultVersionFlag()
		return cmd.Help()
	}
	complete := help.ValidArgsFunction
	help.ValidArgsFunction = func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		dir := cobra.ShellCompDirectiveNoFileComp
		if complete != nil {
			out, dir = complete(c, args, toComplete)
		}
		if len(args) == 0 {
			for _, t := range root.Commands() {
				if t.IsAdditionalHelpTopicCommand() && strings.HasPrefix(t.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(t.Name(), t.Short))
				}
			}
		}
		return out, dir
	}
}
