package cmd

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestBenchNats: evt bench on a nats store named on the command line
// runs every workload there (bulk in appends of --batch events, proc as
// evt processes), leaves its events in the stream, and refuses a stream
// that holds events and a nats store it was not given on the command line.
func TestBenchNats(t *testing.T) {
	ns := inProcessNats(t)
	url := ns.ClientURL() + "/BENCH"

	code, out, errOut := runEvt(t, "--store", url, "bench", "--events", "300", "--streams", "30", "--ops", "3", "--batch", "70", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got []string
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var row struct {
			Workload string
			Events   int
		}
		if err := dec.Decode(&row); err != nil {
			t.Fatalf("decoding %q: %v", out, err)
		}
		got = append(got, row.Workload)
		want := map[string]int{"bulk": 300, "replay": 300, "read": 30, "fold": 300, "consume": 300, "proc": 3, "tail": 3}[row.Workload]
		if row.Events != want {
			t.Errorf("%s: %d events, want %d", row.Workload, row.Events, want)
		}
	}
	if strings.Join(got, ",") != strings.Join(benchWorkloads, ",") {
		t.Errorf("workloads %v, want %v", got, benchWorkloads)
	}

	// The events stay: 300 in bulk, 3 by proc, tail's warm-up and timed ones.
	s, err := openNatsStore(url, RemoteSettings{Timeout: 5 * time.Second}, false)
	if err != nil {
		t.Fatal(err)
	}
	_, next, err := s.Bounds()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(300 + 3 + tailWarmup + 3 + 1); next != want {
		t.Errorf("the stream ends before %d, want %d", next, want)
	}

	for _, c := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"not empty", "", []string{"--store", url, "bench", "--only", "bulk"}, "is not empty: bench makes its store only in a new or empty stream"},
		{"from the environment", url, []string{"bench", "--only", "bulk"}, "bench measures a nats store only when --store names it on the command line"},
		{"batch", "", []string{"--store", ns.ClientURL() + "/OTHER", "bench", "--batch", "-1"}, "--batch must be at least 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("EVT_STORE", c.env)
			code, out, errOut := runEvt(t, c.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errOut, c.want)
			}
		})
	}
}
