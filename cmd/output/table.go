package output

import (
	"strings"

	"github.com/mattn/go-runewidth"
	"github.com/olekukonko/tablewriter"
)

// A table, kubectl style: no borders, left-aligned, two spaces between
// columns, one line a row. Widths are measured in terminal columns (a CJK
// character or an emoji takes two), so columns line up whatever the
// script.
//
// The widths are set by the header and the rows of the first render and
// then kept, as kubectl get -w keeps them: a table printed in parts
// (tail -f -o table, fold -f) gives every row the same columns. A later
// cell wider than its column is cut with "…" when it is free text, and
// otherwise (a number) runs over.
//
// With a width (a terminal), a table that would be wider is fitted by
// cutting its widest free-text column (data, state, stream and type
// names), then the next widest, down to minFreeWidth; free text is what
// a person can read the start of. Without one (-o table into a pipe)
// nothing is cut in the first render.
type table struct {
	header []string
	free   []bool
	widths []int // nil until the first render
}

// minFreeWidth is how narrow fitting makes a free-text column.
const minFreeWidth = 8

// freeText are the keys of the columns whose text may be cut to fit.
var freeText = map[string]bool{
	"data": true, "state": true, "metadata": true, "stream": true, "type": true,
	"last_type": true, "selection": true, "name": true, "group": true, "reason": true,
	"value": true, "source": true, "error": true,
}

// newTable starts a table with a column per field.
func newTable(fields []Field) *table {
	t := &table{header: make([]string, len(fields)), free: make([]bool, len(fields))}
	for i, f := range fields {
		t.header[i] = strings.ToUpper(f.Key)
		t.free[i] = f.Free || freeText[f.Key]
	}
	return t
}

// render lays out rows, with the header first when header is set; width
// is the terminal's (0: none). Each line ends with a newline and has no
// trailing spaces.
func (t *table) render(rows [][]string, header bool, width int, bold bool) string {
	for _, row := range rows {
		for i, cell := range row {
			row[i] = oneLine(cell)
		}
	}
	if t.widths == nil {
		t.widths = t.natural(rows)
		if width > 0 {
			t.fit(width)
		}
	}
	var b strings.Builder
	if header {
		line := t.line(t.header, width)
		if bold {
			line = "\033[1m" + line + "\033[0m"
		}
		b.WriteString(line + "\n")
	}
	for _, row := range rows {
		b.WriteString(t.line(row, width) + "\n")
	}
	return b.String()
}

// natural is the width of each column's widest cell, header included.
func (t *table) natural(rows [][]string) []int {
	w := make([]int, len(t.header))
	for i, h := range t.header {
		w[i] = runewidth.StringWidth(h)
	}
	for _, row := range rows {
		for i, cell := range row {
			if i < len(w) {
				w[i] = max(w[i], runewidth.StringWidth(cell))
			}
		}
	}
	return w
}

// fit caps the free-text columns at the largest width that makes the
// table fit width: the widest are cut first, and columns cut end equally
// wide (never below their minimum). If even that does not fit, the
// terminal wraps; nothing else is cut.
func (t *table) fit(width int) {
	total := func(limit int) int {
		sum := 2 * (len(t.widths) - 1)
		for i, w := range t.widths {
			if t.free[i] {
				w = max(min(w, limit), min(w, t.minWidth(i)))
			}
			sum += w
		}
		return sum
	}
	widest := 0
	for i, w := range t.widths {
		if t.free[i] {
			widest = max(widest, w)
		}
	}
	if total(widest) <= width {
		return
	}
	lo, hi := 0, widest // total(lo) may fit; total(hi) does not
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if total(mid) <= width {
			lo = mid
		} else {
			hi = mid
		}
	}
	for i, w := range t.widths {
		if t.free[i] {
			t.widths[i] = max(min(w, lo), min(w, t.minWidth(i)))
		}
	}
}

func (t *table) minWidth(i int) int {
	return max(minFreeWidth, runewidth.StringWidth(t.header[i]))
}

// line lays out one row in the table's widths. The last column is not
// padded; with a width, it is cut to what is left of the line.
func (t *table) line(cells []string, width int) string {
	out := make([]string, len(cells))
	used := 0
	for i, cell := range cells {
		if i > 0 {
			used += 2
		}
		w := 0
		if i < len(t.widths) {
			w = t.widths[i]
		}
		last := i == len(cells)-1
		free := i < len(t.free) && t.free[i]
		cw := runewidth.StringWidth(cell)
		switch {
		case last && free && width > 0 && used+cw > width:
			cell = cut(cell, max(width-used, min(cw, minFreeWidth)))
		case last:
		case cw > w && free:
			cell = cut(cell, w)
		}
		out[i] = cell
		used += max(runewidth.StringWidth(cell), w)
	}
	return t.layout(out)
}

// layout writes one row, its cells already cut to their columns, with
// tablewriter: no borders, left-aligned, two spaces between columns, each
// column at least its kept width (a wider cell, a number, runs over).
func (t *table) layout(cells []string) string {
	var b strings.Builder
	tw := tablewriter.NewWriter(&b)
	tw.SetAutoWrapText(false)
	tw.SetAutoFormatHeaders(false)
	tw.SetBorder(false)
	tw.SetHeaderLine(false)
	tw.SetColumnSeparator("")
	tw.SetCenterSeparator("")
	tw.SetRowSeparator("")
	tw.SetTablePadding("  ")
	tw.SetNoWhiteSpace(true)
	tw.SetAlignment(tablewriter.ALIGN_LEFT)
	for i := range cells {
		if i < len(t.widths) && i < len(cells)-1 {
			tw.SetColMinWidth(i, t.widths[i])
		}
	}
	tw.Append(cells)
	tw.Render()
	return strings.TrimRight(b.String(), " \n")
}

// cut shortens s to at most w columns, ending it with "…" when it cut.
func cut(s string, w int) string {
	if runewidth.StringWidth(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	return runewidth.Truncate(s, w, "…")
}

// oneLine keeps a cell on one line: tabs, newlines and other control
// characters become spaces.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
