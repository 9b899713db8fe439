package cmd

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/evtdev/evt/cmd/output"
)

// parseMetrics parses text exposition format with Prometheus's own
// parser (the one a scrape and node_exporter's textfile collector use),
// holding names to the legacy rules the textfile collector checks. Any
// line it rejects fails the test.
func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus's parser rejects the output: %v\n%s", err, text)
	}
	for name, f := range fams {
		if f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s: type %v, want gauge", name, f.GetType())
		}
		if f.GetHelp() == "" {
			t.Errorf("%s: no help", name)
		}
	}
	return fams
}

// sample returns the value of family name's sample whose label has
// value, failing the test when there is none.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetGauge().GetValue()
			}
		}
		if label == "" && len(m.GetLabel()) == 0 {
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s has no sample with %s=%q", name, label, value)
	return 0
}

// TestGroupLsPrometheus: group ls -o prometheus is valid text exposition
// format with one sample per group of each figure, and the values are
// those of -o json.
func TestGroupLsPrometheus(t *testing.T) {
	isolate(t)
	seedStore(t)
	for _, args := range [][]string{
		{"group", "create", "billing", "account-1", "--from", "start"},
		{"group", "create", "all", "--from", "end"},
	} {
		if code, _, errOut := runEvt(t, args...); code != 0 {
			t.Fatalf("evt %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
	}
	code, out, errOut := runEvt(t, "group", "ls", "-o", "prometheus")
	if code != 0 {
		t.Fatalf("group ls -o prometheus: exit %d: %s", code, errOut)
	}
	fams := parseMetrics(t, out)
	for _, name := range []string{"evt_group_position", "evt_group_lag_events", "evt_group_lag_seconds",
		"evt_group_pending_events", "evt_group_parked_events", "evt_group_members"} {
		if n := len(fams[name].GetMetric()); n != 2 {
			t.Errorf("%s: %d samples, want one per group (2)", name, n)
		}
	}
	if got := sample(t, fams, "evt_group_lag_events", "group", "billing"); got != 2 {
		t.Errorf("billing lag %v events, want 2 (account-1 has two)", got)
	}
	if got := sample(t, fams, "evt_group_lag_seconds", "group", "billing"); got <= 0 || got > time.Hour.Seconds() {
		t.Errorf("billing lag %v seconds, want the age of its first event", got)
	}
	if got := sample(t, fams, "evt_group_lag_events", "group", "all"); got != 0 {
		t.Errorf("all lag %v, want 0 (it starts at the end)", got)
	}
	if got := sample(t, fams, "evt_group_lag_seconds", "group", "all"); got != 0 {
		t.Errorf("all lag %v seconds, want 0", got)
	}
	if got := sample(t, fams, "evt_group_position", "group", "all"); got != 4 {
		t.Errorf("all position %v, want 4", got)
	}
	for _, name := range []string{"evt_group_pending_events", "evt_group_parked_events", "evt_group_members"} {
		if got := sample(t, fams, name, "group", "billing"); got != 0 {
			t.Errorf("%s{group=billing} = %v, want 0", name, got)
		}
	}

	// A store without groups: still valid, every family named and
	// typed, no sample (the parser keeps no family without one).
	isolate(t)
	seedStore(t)
	_, out, _ = runEvt(t, "group", "ls", "-o", "prometheus")
	if fams = parseMetrics(t, out); len(fams) != 0 {
		t.Errorf("no groups: %d families with samples, want none", len(fams))
	}
	if !strings.Contains(out, "# TYPE evt_group_lag_events gauge\n") {
		t.Errorf("no groups: the families are not declared:\n%s", out)
	}
}

// TestStatsPrometheus: stats -o prometheus is valid text exposition
// format; the figures match -o json's; a selection with characters a
// label value must escape reads back the same.
func TestStatsPrometheus(t *testing.T) {
	isolate(t)
	seedStore(t)
	odd := `we"ird\name`
	if code, _, errOut := runEvt(t, "append", odd, "T", "{}"); code != 0 {
		t.Fatalf("append: exit %d: %s", code, errOut)
	}
	code, out, errOut := runEvt(t, "stats", "-o", "prometheus")
	if code != 0 {
		t.Fatalf("stats -o prometheus: exit %d: %s", code, errOut)
	}
	fams := parseMetrics(t, out)
	want := map[string]float64{"evt_events": 4, "evt_streams": 3, "evt_last_position": 4}
	for name, v := range want {
		if got := sample(t, fams, name, "selection", "*"); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	last := sample(t, fams, "evt_last_append_timestamp_seconds", "selection", "*")
	if age := float64(time.Now().UnixNano())/1e9 - last; age < 0 || age > time.Hour.Seconds() {
		t.Errorf("last append %v, want a unix time within the hour", last)
	}
	if got := sample(t, fams, "evt_store_bytes", "", ""); got <= 0 {
		t.Errorf("evt_store_bytes = %v", got)
	}
	if got := sample(t, fams, "evt_store_segments", "", ""); got != 1 {
		t.Errorf("evt_store_segments = %v, want 1", got)
	}

	code, out, errOut = runEvt(t, "stats", odd, "-o", "prometheus")
	if code != 0 {
		t.Fatalf("stats %s -o prometheus: exit %d: %s", odd, code, errOut)
	}
	fams = parseMetrics(t, out)
	if got := sample(t, fams, "evt_events", "selection", odd); got != 1 {
		t.Errorf("evt_events{selection=%q} = %v, want 1", odd, got)
	}

	// An empty selection: zeros, not missing samples.
	_, out, _ = runEvt(t, "stats", "nothing-*", "-o", "prometheus")
	fams = parseMetrics(t, out)
	for _, name := range []string{"evt_events", "evt_last_append_timestamp_seconds", "evt_first_append_timestamp_seconds"} {
		if got := sample(t, fams, name, "selection", "nothing-*"); got != 0 {
			t.Errorf("%s of an empty selection = %v, want 0", name, got)
		}
	}
}

// TestPrometheusOnlyWithMetrics: -o prometheus on a command without
// metrics, or with --jq, is a usage error.
func TestPrometheusOnlyWithMetrics(t *testing.T) {
	isolate(t)
	seedStore(t)
	for _, args := range [][]string{{"tail", "-o", "prometheus"}, {"streams", "-o", "prometheus"}, {"stats", "-o", "prometheus", "--jq", "."}} {
		code, out, errOut := runEvt(t, args...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "evt: ") {
			t.Errorf("evt %s: exit %d, stdout %q, stderr %q; want exit 2 and one error line", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// TestWriteMetricsValues: values print as Prometheus reads them (whole
// numbers without an exponent, NaN and infinities by name) and label
// values and help texts are escaped.
func TestWriteMetricsValues(t *testing.T) {
	var buf bytes.Buffer
	err := output.WriteMetrics(&buf, []output.MetricFamily{{
		Name: "evt_test", Help: "a \\ help\nwith two lines", Type: "gauge",
		Samples: []output.Sample{
			{Labels: []output.Label{{Name: "l", Value: "big"}}, Value: 1 << 52},
			{Labels: []output.Label{{Name: "l", Value: "frac"}}, Value: 0.25},
			{Labels: []output.Label{{Name: "l", Value: "nan"}}, Value: math.NaN()},
			{Labels: []output.Label{{Name: "l", Value: "inf"}}, Value: math.Inf(-1)},
			{Labels: []output.Label{{Name: "l", Value: "q\"\\\n"}}, Value: 1},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	if !strings.Contains(text, `evt_test{l="big"} 4503599627370496`+"\n") {
		t.Errorf("a whole number prints with an exponent or a fraction:\n%s", text)
	}
	fams := parseMetrics(t, text)
	if got := fams["evt_test"].GetHelp(); got != "a \\ help\nwith two lines" {
		t.Errorf("help reads back as %q", got)
	}
	checks := map[string]func(float64) bool{
		"big": func(v float64) bool { return v == 1<<52 }, "frac": func(v float64) bool { return v == 0.25 },
		"nan": math.IsNaN, "inf": func(v float64) bool { return math.IsInf(v, -1) }, "q\"\\\n": func(v float64) bool { return v == 1 },
	}
	for label, ok := range checks {
		if v := sample(t, fams, "evt_test", "l", label); !ok(v) {
			t.Errorf("sample %q reads back as %v", label, v)
		}
	}
}
