package cmd

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type docsOptions struct {
	Man      string // directory for man pages
	Markdown string // directory for the markdown reference
}

func newDocsCmd(g *globalOptions) *cobra.Command {
	o := &docsOptions{}
	cmd := &cobra.Command{
		Use:   "docs (--man DIR | --markdown DIR)",
		Short: "Write the manual: man pages or a markdown reference",
		Long: `Write evt's reference, generated from the same text as --help: one page
per command and per help topic (exit-codes, cursors, formats).

  --man DIR        man pages in section 1: evt.1, evt-tail.1,
                   evt-group-create.1, evt-exit-codes.1, ...
  --markdown DIR   markdown: evt.md, evt_tail.md, evt_group_create.md,
                   evt_exit-codes.md, ..., linked to each other

DIR is created if missing; existing pages in it are overwritten. The
output is reproducible: no page carries the time it was generated, and
the date in the man pages' header is SOURCE_DATE_EPOCH when it is set,
else the commit time of the build (else a fixed date), so generating
twice gives identical files. Nothing is printed on success.`,
		Example: `  evt docs --man man/man1
  evt docs --markdown docs/reference
  man -l man/man1/evt-tail.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			switch {
			case fl.Changed("man") && fl.Changed("markdown"):
				return usageErrorf("--man and --markdown exclude each other; run evt docs once for each")
			case !fl.Changed("man") && !fl.Changed("markdown"):
				return usageErrorf("docs needs --man DIR or --markdown DIR")
			case fl.Changed("man") && o.Man == "", fl.Changed("markdown") && o.Markdown == "":
				return usageErrorf("docs: --man and --markdown need a directory")
			}
			return runDocs(o, cmd.Root())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Man, "man", "", "write man pages into DIR")
	fl.StringVar(&o.Markdown, "markdown", "", "write a markdown reference into DIR")
	_ = cmd.MarkFlagDirname("man")
	_ = cmd.MarkFlagDirname("markdown")
	return cmd
}

// runDocs writes the pages of root's tree. It changes the tree (the
// process ends after it): help topics named in the root's Long text.
func runDocs(o *docsOptions, root *cobra.Command) error {
	dir := o.Markdown
	if o.Man != "" {
		dir = o.Man
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	var topics []*cobra.Command
	for _, c := range root.Commands() {
		if c.IsAdditionalHelpTopicCommand() {
			topics = append(topics, c)
		}
	}
	// Help topics are not commands: they get pages of their own, and the
	// root's page names them.
	if len(topics) > 0 {
		var names []string
		for _, t := range topics {
			names = append(names, "evt help "+t.Name())
		}
		root.Long += "\n\nHelp topics: " + strings.Join(names, ", ") + "."
	}

	if o.Man != "" {
		date, err := docsDate()
		if err != nil {
			return err
		}
		h := manHeader{Section: "1", Date: date.Format("Jan 2006"), Source: "evt " + readVersion().Version, Manual: "evt manual"}
		pages := map[string][]byte{}
		visitDocCommands(root, func(c *cobra.Command) {
			pages[strings.ReplaceAll(c.CommandPath(), " ", "-")+".1"] = manPage(c, h)
		})
		for _, t := range topics {
			pages["evt-"+t.Name()+".1"] = topicManPage(t, h)
		}
		return writePages(dir, pages)
	}
	pages := map[string][]byte{}
	visitDocCommands(root, func(c *cobra.Command) {
		pages[strings.ReplaceAll(c.CommandPath(), " ", "_")+".md"] = markdownPage(c)
	})
	for _, t := range topics {
		pages["evt_"+t.Name()+".md"] = topicMarkdown(t)
	}
	return writePages(dir, pages)
}

// visitDocCommands calls f for c and every command under it that gets a
// page: available commands, not help topics (cobra's --help hides the
// same ones).
func visitDocCommands(c *cobra.Command, f func(*cobra.Command)) {
	c.InitDefaultHelpFlag()
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			visitDocCommands(sub, f)
		}
	}
	f(c)
}

// writePages writes each page into dir, in name order.
func writePages(dir string, pages map[string][]byte) error {
	for _, name := range slices.Sorted(maps.Keys(pages)) {
		if err := os.WriteFile(filepath.Join(dir, name), pages[name], 0o666); err != nil {
			return err
		}
	}
	return nil
}

// docChildren are the commands under c that get pages, by name.
func docChildren(c *cobra.Command) []*cobra.Command {
	var subs []*cobra.Command
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			subs = append(subs, sub)
		}
	}
	slices.SortFunc(subs, func(a, b *cobra.Command) int { return strings.Compare(a.Name(), b.Name()) })
	return subs
}

// markdownPage is the markdown reference page of c, laid out as
// cobra/doc's GenMarkdown lays it out (without its generation date), so
// that the pages stay what they were when cobra/doc wrote them.
func markdownPage(c *cobra.Command) []byte {
	var b bytes.Buffer
	name := c.CommandPath()
	fmt.Fprintf(&b, "## %s\n\n%s\n\n", name, c.Short)
	if c.Long != "" {
		fmt.Fprintf(&b, "### Synopsis\n\n%s\n\n", markdownText(c.Long))
	}
	if c.Runnable() {
		fmt.Fprintf(&b, "```\n%s\n```\n\n", c.UseLine())
	}
	if c.Example != "" {
		fmt.Fprintf(&b, "### Examples\n\n```\n%s\n```\n\n", c.Example)
	}
	for _, fs := range []struct {
		title string
		flags *pflag.FlagSet
	}{{"Options", c.NonInheritedFlags()}, {"Options inherited from parent commands", c.InheritedFlags()}} {
		if fs.flags.HasAvailableFlags() {
			fmt.Fprintf(&b, "### %s\n\n```\n", fs.title)
			fs.flags.SetOutput(&b)
			fs.flags.PrintDefaults()
			b.WriteString("```\n\n")
		}
	}
	children := docChildren(c)
	if c.HasParent() || len(children) > 0 {
		b.WriteString("### SEE ALSO\n\n")
		link := func(path string) string { return strings.ReplaceAll(path, " ", "_") + ".md" }
		if p := c.Parent(); p != nil {
			fmt.Fprintf(&b, "* [%s](%s)\t - %s\n", p.CommandPath(), link(p.CommandPath()), p.Short)
		}
		for _, sub := range children {
			fmt.Fprintf(&b, "* [%s](%s)\t - %s\n", sub.CommandPath(), link(sub.CommandPath()), sub.Short)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// topicMarkdown is the markdown page of a help topic, linked from evt.md.
func topicMarkdown(t *cobra.Command) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "## evt help %s\n\n%s\n\n", t.Name(), t.Short)
	fmt.Fprintf(&b, "### Synopsis\n\n%s\n\n", markdownText(t.Long))
	fmt.Fprintf(&b, "### SEE ALSO\n\n* [evt](evt.md)\t - %s\n\n", t.Root().Short)
	return []byte(b.String())
}

// fallbackDocsDate dates the man pages of a build that knows neither
// SOURCE_DATE_EPOCH nor its commit time (go test, -buildvcs=false).
var fallbackDocsDate = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// docsDate is the date in the man pages' header, never the clock, so that
// pages generated twice are identical: SOURCE_DATE_EPOCH (the
// reproducible-builds convention, unix seconds) when set, else the time of
// the commit evt was built from, else fallbackDocsDate.
func docsDate() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, usageErrorf("SOURCE_DATE_EPOCH: want unix seconds, not %q", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t.UTC(), nil
				}
			}
		}
	}
	return fallbackDocsDate, nil
}

// markdownText makes a help text, written for the terminal, read the same
// in markdown and man pages (which md2man makes from markdown). An
// indented block (a table of forms, a sample file) needs a blank line
// before it and four spaces of indentation to stay preformatted, or its
// lines run together into a paragraph; in the prose around it, a "<"
// would open an HTML tag (EVT_<FLAG>) and is escaped.
func markdownText(text string) string {
	lines := strings.Split(text, "\n")
	var out []string
	for i := 0; i < len(lines); {
		if !strings.HasPrefix(lines[i], " ") {
			out = append(out, strings.ReplaceAll(lines[i], "<", `\<`))
			i++
			continue
		}
		// A block: indented lines, and blank lines between them.
		j, minIndent := i, len(lines[i])
		for j < len(lines) {
			l := lines[j]
			if strings.TrimSpace(l) == "" {
				if j+1 < len(lines) && strings.HasPrefix(lines[j+1], " ") {
					j++
					continue
				}
				break
			}
			if !strings.HasPrefix(l, " ") {
				break
			}
			minIndent = min(minIndent, len(l)-len(strings.TrimLeft(l, " ")))
			j++
		}
		if len(out) > 0 && strings.TrimSpace(out[len(out)-1]) != "" {
			out = append(out, "")
		}
		pad := strings.Repeat(" ", max(0, 4-minIndent))
		for _, l := range lines[i:j] {
			if strings.TrimSpace(l) != "" {
				l = pad + l
			}
			out = append(out, l)
		}
		if j < len(lines) && strings.TrimSpace(lines[j]) != "" {
			out = append(out, "") // and a blank line after it
		}
		i = j
	}
	return strings.Join(out, "\n")
}
