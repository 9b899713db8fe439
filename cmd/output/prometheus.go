package output

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
)

// FormatPrometheus is -o prometheus: metrics in Prometheus's text
// exposition format (version 0.0.4), for node_exporter's textfile
// collector. Only commands that have metrics (group ls, stats) print it,
// through WriteMetrics rather than a Printer's rows.
const FormatPrometheus = "prometheus"

// MetricFamily is one metric of -o prometheus: a name, its help text, its
// type (gauge: every figure evt prints can go down) and its samples.
type MetricFamily struct {
	Name    string // [a-zA-Z_:][a-zA-Z0-9_:]*, evt_ first
	Help    string
	Type    string // "gauge" or "counter"
	Samples []Sample
}

// Sample is one value of a family, told apart from the others by its
// labels.
type Sample struct {
	Labels []Label
	Value  float64
}

// Label is one name="value" pair of a sample.
type Label struct {
	Name, Value string
}

// WriteMetrics writes the families in the text exposition format: per
// family its # HELP and # TYPE lines, then one line per sample. A family
// without samples still says what it is, so a scrape of a store without
// groups is valid and lists nothing.
func WriteMetrics(w io.Writer, families []MetricFamily) error {
	bw := bufio.NewWriter(w)
	for _, f := range families {
		bw.WriteString("# HELP " + f.Name + " " + escapeHelp(f.Help) + "\n")
		bw.WriteString("# TYPE " + f.Name + " " + f.Type + "\n")
		for _, s := range f.Samples {
			bw.WriteString(f.Name)
			if len(s.Labels) > 0 {
				bw.WriteByte('{')
				for i, l := range s.Labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					bw.WriteString(l.Name + `="` + escapeLabel(l.Value) + `"`)
				}
				bw.WriteByte('}')
			}
			bw.WriteString(" " + formatValue(s.Value) + "\n")
		}
	}
	return bw.Flush()
}

// formatValue writes a float the way Prometheus's parser reads it: whole
// numbers without an exponent up to 2^53 (counts stay readable), NaN and
// infinities by name.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// escapeHelp escapes a help text: backslash and line feed.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// escapeLabel escapes a label value: backslash, double quote, line feed.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
