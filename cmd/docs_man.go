package cmd

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The man pages are roff written here, straight from the help texts.
// cobra/doc would write them through go-md2man and blackfriday, whose
// package initialisation alone costs every evt process about 0.3 ms (and
// 100 page faults), for a command run once per release.

// manHeader is what the .TH line of every page carries.
type manHeader struct {
	Section string // "1"
	Date    string // "Jan 2006"
	Source  string // "evt v1.2.3"
	Manual  string // "evt manual"
}

// manPage is the man page of command c.
func manPage(c *cobra.Command, h manHeader) []byte {
	name := strings.ReplaceAll(c.CommandPath(), " ", "-")
	desc := c.Long
	if desc == "" {
		desc = c.Short
	}
	var b bytes.Buffer
	manPreamble(&b, h, name, c.Short, c.UseLine(), desc)
	for _, fs := range []struct {
		title string
		flags *pflag.FlagSet
	}{{"OPTIONS", c.NonInheritedFlags()}, {"OPTIONS INHERITED FROM PARENT COMMANDS", c.InheritedFlags()}} {
		if fs.flags.HasAvailableFlags() {
			fmt.Fprintf(&b, ".SH %s\n", fs.title)
			manFlags(&b, fs.flags)
		}
	}
	if c.Example != "" {
		b.WriteString(".SH EXAMPLE\n")
		manBlock(&b, strings.Split(c.Example, "\n"))
	}
	var also []string
	if p := c.Parent(); p != nil {
		also = append(also, strings.ReplaceAll(p.CommandPath(), " ", "-"))
	}
	for _, sub := range docChildren(c) {
		also = append(also, name+"-"+sub.Name())
	}
	manSeeAlso(&b, h, also)
	return b.Bytes()
}

// topicManPage is the man page of a help topic, laid out as a command's,
// without the options a topic does not have.
func topicManPage(t *cobra.Command, h manHeader) []byte {
	var b bytes.Buffer
	manPreamble(&b, h, "evt-"+t.Name(), t.Short, "evt help "+t.Name(), t.Long)
	manSeeAlso(&b, h, []string{"evt"})
	return b.Bytes()
}

func manPreamble(b *bytes.Buffer, h manHeader, name, short, synopsis, desc string) {
	fmt.Fprintf(b, ".TH %s %s %s %s %s\n", roffQuote(strings.ToUpper(name)), roffQuote(h.Section), roffQuote(h.Date), roffQuote(h.Source), roffQuote(h.Manual))
	fmt.Fprintf(b, ".SH NAME\n%s \\- %s\n", roffEscape(name), roffEscape(short))
	fmt.Fprintf(b, ".SH SYNOPSIS\n\\fB%s\\fP\n", roffEscape(synopsis))
	b.WriteString(".SH DESCRIPTION\n")
	manText(b, desc)
}

// manFlags lists flags as cobra/doc did: -s, --long=DEFAULT, with the
// default quoted for strings and in brackets for a flag whose value may
// be left out.
func manFlags(b *bytes.Buffer, flags *pflag.FlagSet) {
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Deprecated != "" || f.Hidden {
			return
		}
		tag := `\fB\-\-` + roffEscape(f.Name) + `\fP`
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			tag = `\fB\-` + roffEscape(f.Shorthand) + `\fP, ` + tag
		}
		def := f.DefValue
		if f.Value.Type() == "string" {
			def = fmt.Sprintf("%q", def)
		}
		def = "=" + roffEscape(def)
		if f.NoOptDefVal != "" {
			def = "[" + def + "]"
		}
		fmt.Fprintf(b, ".TP\n%s%s\n%s\n", tag, def, roffLine(f.Usage))
	})
}

func manSeeAlso(b *bytes.Buffer, h manHeader, pages []string) {
	if len(pages) == 0 {
		return
	}
	refs := make([]string, len(pages))
	for i, p := range pages {
		refs[i] = `\fB` + roffEscape(p) + `\fP(` + h.Section + `)`
	}
	fmt.Fprintf(b, ".SH SEE ALSO\n%s\n", strings.Join(refs, ", "))
}

// manText renders a help text, written for an 80-column terminal, as roff:
// paragraphs of prose (filled) separated by blank lines, and indented
// blocks (tables of forms, sample files) kept as they are, unfilled. It
// finds the blocks as markdownText does.
func manText(b *bytes.Buffer, text string) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i := 0; i < len(lines); {
		switch {
		case strings.TrimSpace(lines[i]) == "":
			i++
		case !strings.HasPrefix(lines[i], " "):
			b.WriteString(".PP\n")
			for ; i < len(lines) && strings.TrimSpace(lines[i]) != "" && !strings.HasPrefix(lines[i], " "); i++ {
				b.WriteString(roffLine(lines[i]))
				b.WriteByte('\n')
			}
		default:
			j := i
			for j < len(lines) {
				if strings.TrimSpace(lines[j]) == "" {
					if j+1 < len(lines) && strings.HasPrefix(lines[j+1], " ") {
						j++
						continue
					}
					break
				}
				if !strings.HasPrefix(lines[j], " ") {
					break
				}
				j++
			}
			manBlock(b, lines[i:j])
			i = j
		}
	}
}

// manBlock writes lines unfilled, indented, with their common indentation
// taken off.
func manBlock(b *bytes.Buffer, lines []string) {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			n := len(l) - len(strings.TrimLeft(l, " "))
			if indent < 0 || n < indent {
				indent = n
			}
		}
	}
	b.WriteString(".PP\n.RS 4\n.nf\n")
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString(roffLine(l[indent:]))
		b.WriteByte('\n')
	}
	b.WriteString(".fi\n.RE\n")
}

// roffEscape makes s literal text for roff: a backslash is \e, a hyphen
// \- (so that flags and names are copied as typed, not as typographic
// hyphens), and tabs are spaces (a tab in roff is a tab stop).
func roffEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\e`)
		case '-':
			b.WriteString(`\-`)
		case '\t':
			b.WriteString("    ")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// roffLine is roffEscape for a whole input line: a line that starts with
// a period or an apostrophe would be a request, and \& keeps it text.
func roffLine(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffQuote is s as one quoted argument of a request. A double quote
// inside is written \(dq.
func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roffEscape(s), `"`, `\(dq`) + `"`
}
