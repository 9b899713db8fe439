package cmd

import (
	"bytes"
	"strings"

	"github.com/mattn/go-runewidth"
	"github.com/spf13/cobra"
)

// Help on a terminal of any width. Cobra prints help and usage as
// written: the Long texts are wrapped for 80 columns, and a flag's line is
// as long as its description. On a narrower terminal the terminal would
// wrap them inside a word ("$XDG_CONFIG_" | "HOME"); so help is rendered
// into a buffer and wrapped again at word boundaries to the width:
// paragraphs of prose are refilled, and an indented line (a flag, a
// command in a list, a row of a table) continues under its own
// description column. A wider terminal gets the text as written.

// wrapHelp makes root's help and usage fit the width of ios's terminal,
// aligns the help topics with the commands, and makes a mistyped command
// followed by a flag (evt taill -f) still suggest the command.
func wrapHelp(root *cobra.Command, ios *IOStreams) {
	// Topics listed by name, in the commands' column, rather than by
	// path one column off.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(),
		"{{rpad .CommandPath .CommandPathPadding}} {{.Short}}", "{{rpad .Name .NamePadding}} {{.Short}}", 1))
	help := root.HelpFunc()
	usage := root.UsageFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		out := c.OutOrStdout()
		var buf bytes.Buffer
		c.SetOut(&buf)
		help(c, args)
		restoreOut(c, root, ios)
		out.Write([]byte(wrapText(buf.String(), helpWidth(ios))))
	})
	root.SetUsageFunc(func(c *cobra.Command) error {
		out := c.OutOrStderr()
		var buf bytes.Buffer
		c.SetOut(&buf)
		c.SetErr(&buf)
		err := usage(c)
		restoreOut(c, root, ios)
		out.Write([]byte(wrapText(buf.String(), helpWidth(ios))))
		return err
	})
	flagErr := root.FlagErrorFunc()
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// "evt taill -f": cobra stops at root, whose flags have no -f;
		// the command that does not exist is the mistake to report.
		if args := c.Flags().Args(); c.HasAvailableSubCommands() && len(args) > 0 {
			if sub, _, ferr := c.Find(args[:1]); ferr != nil || sub == c {
				return unknownSubcommand(c, args[:1])
			}
		}
		return flagErr(c, err)
	})
}

// restoreOut gives c back the writers it had: root its own, any other
// command its parent's (cobra's default when none is set).
func restoreOut(c, root *cobra.Command, ios *IOStreams) {
	if c == root {
		c.SetOut(ios.Out)
		c.SetErr(ios.ErrOut)
		return
	}
	c.SetOut(nil)
	c.SetErr(nil)
}

// helpWidth is the width help is wrapped to: the terminal's, less one
// column so that a full line does not wrap on terminals that wrap at the
// last column; 0 (as written) when stdout is not a terminal.
func helpWidth(ios *IOStreams) int {
	if !ios.IsStdoutTTY() || ios.KnownWidth() == 0 {
		return 0
	}
	return ios.KnownWidth() - 1
}

// wrapText wraps text to width columns (0: leave it). A paragraph (lines
// that start without a space) with a line too long is refilled; an
// indented line too long is broken at spaces and continues under the
// column where its description starts (after its first gap of two or
// more spaces), or under its head, indented further, when that column
// leaves too little room; a line without such a gap continues two
// columns in from its indent.
func wrapText(text string, width int) string {
	if width <= 0 {
		return text
	}
	lines := strings.Split(text, "\n")
	var out []string
	for i := 0; i < len(lines); {
		line := lines[i]
		if line == "" || line[0] == ' ' {
			out = append(out, wrapIndented(line, width)...)
			i++
			continue
		}
		j, long := i, false
		for j < len(lines) && lines[j] != "" && lines[j][0] != ' ' {
			long = long || runewidth.StringWidth(lines[j]) > width
			j++
		}
		if !long {
			out = append(out, lines[i:j]...)
		} else {
			out = append(out, fill(strings.Fields(strings.Join(lines[i:j], " ")), "", "", width)...)
		}
		i = j
	}
	return strings.Join(out, "\n")
}

// wrapIndented breaks one indented line that is wider than width.
func wrapIndented(line string, width int) []string {
	if runewidth.StringWidth(line) <= width {
		return []string{line}
	}
	indent := len(line) - len(strings.TrimLeft(line, " "))
	hang := indent + 2
	// The description column: after the first run of two or more spaces
	// that follows text.
	if gap := strings.Index(line[indent:], "  "); gap > 0 {
		rest := line[indent+gap:]
		col := indent + gap + len(rest) - len(strings.TrimLeft(rest, " "))
		if col < width*2/3 {
			head := line[:col]
			return fill(strings.Fields(line[col:]), head, strings.Repeat(" ", col), width)
		}
		// Too far right to leave room: the description goes under the
		// head, indented further, as gh prints flags on a narrow
		// terminal.
		sub := strings.Repeat(" ", subIndent(width))
		head := fill(strings.Fields(line[:col]), line[:indent], line[:indent]+"    ", width)
		return append(head, fill(strings.Fields(line[col:]), sub, sub, width)...)
	}
	if indent >= width*2/3 {
		// The continuation of a description whose entry was broken
		// under its head: it goes where that description went.
		indent, hang = subIndent(width), subIndent(width)
	}
	return fill(strings.Fields(line), strings.Repeat(" ", indent), strings.Repeat(" ", min(hang, width/2)), width)
}

// subIndent is where a description goes when it is moved under its head:
// one column for every entry, whatever the head's indent.
func subIndent(width int) int { return min(10, width/3) }

// fill lays words out in lines of at most width columns, the first
// starting with first and the others with next. A word longer than a
// line gets a line of its own.
func fill(words []string, first, next string, width int) []string {
	var out []string
	line := first
	empty := true
	for _, w := range words {
		if !empty && runewidth.StringWidth(line)+1+runewidth.StringWidth(w) > width {
			out = append(out, line)
			line, empty = next, true
		}
		if !empty {
			line += " "
		}
		line += w
		empty = false
	}
	return append(out, line)
}
