package cmd

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/evtdev/evt/cmd/output"
)

// TestBenchData checks that an event's data is valid JSON of exactly
// --size bytes, whatever the number in it.
func TestBenchData(t *testing.T) {
	for _, size := range []int{benchMinSize, 200, 1000, benchMaxSize} {
		for _, i := range []int{0, 9, 10, 9999, 123456} {
			b := benchData([]byte("prefix"), i, size)[len("prefix"):]
			if len(b) != size {
				t.Errorf("benchData(%d, %d) is %d bytes", i, size, len(b))
			}
			if !json.Valid(b) {
				t.Errorf("benchData(%d, %d) is not JSON: %s", i, size, b)
			}
		}
	}
}

// TestBenchFields checks a result's row: nearest-rank percentiles, and no
// figure (null) where one means nothing.
func TestBenchFields(t *testing.T) {
	ops := make([]time.Duration, 100)
	for i := range ops {
		ops[len(ops)-1-i] = time.Duration(i+1) * time.Millisecond // unsorted on purpose
	}
	r := benchResult{workload: "tail", events: 100, elapsed: 2 * time.Second, ops: ops, noRate: true}
	got := string(output.AppendRowJSON(nil, r.fields()))
	want := `{"workload":"tail","events":100,"seconds":2,"events_per_s":null,"mb_per_s":null,"p50_ms":50,"p90_ms":90,"p99_ms":99}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	r = benchResult{workload: "bulk", events: 3000, bytes: 1_500_000, elapsed: 1500 * time.Millisecond}
	got = string(output.AppendRowJSON(nil, r.fields()))
	want = `{"workload":"bulk","events":3000,"seconds":1.5,"events_per_s":2000,"mb_per_s":1,"p50_ms":null,"p90_ms":null,"p99_ms":null}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
