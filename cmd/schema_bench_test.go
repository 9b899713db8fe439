package cmd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/evtdev/evt/log/local"
)

// benchSchema is the schema of BenchmarkBulkAppendSchema's events: every
// keyword kind of the quick subset, as a real event schema has them.
const benchSchema = `{"type":"object","required":["amount","currency","account","items"],"additionalProperties":false,
 "properties":{"amount":{"type":"integer","minimum":1,"maximum":1000000},"currency":{"enum":["EUR","USD","GBP"]},
 "account":{"type":"string","minLength":1,"maxLength":255},"note":{"type":"string","maxLength":200},
 "items":{"type":"array","items":{"type":"object","required":["sku","price"],"properties":{"sku":{"type":"string"},"price":{"type":"number","minimum":0}}}}}}`

// BenchmarkBulkAppendSchema is a bulk append of 100k envelopes (about
// 200 bytes each, three types) from a file, as `evt append -q <
// events.ndjson` runs it, into a store without schemas and into one with
// benchSchema on every type. -count N runs the two in turn (A B A B).
func BenchmarkBulkAppendSchema(b *testing.B) {
	const events = 100_000
	input := filepath.Join(b.TempDir(), "events.ndjson")
	f, err := os.Create(input)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	types := []string{"Deposited", "Withdrawn", "Opened"}
	for i := range events {
		fmt.Fprintf(w, `{"stream":"account-%d","type":"%s","data":{"amount":%d,"currency":"EUR","account":"account-%d","note":"%s","items":[{"sku":"s0","price":0.5},{"sku":"s1","price":1.5}]}}`+"\n",
			i%1000, types[i%3], 1+i%1000, i%1000, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[:10+i%30])
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	for _, withSchemas := range []bool{false, true} {
		name := "none"
		if withSchemas {
			name = "every-type"
		}
		b.Run(name, func(b *testing.B) {
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "store")
				g := &globalOptions{IO: &IOStreams{Out: io.Discard, ErrOut: io.Discard}, Dir: dir, Sync: syncAlways, LockTimeout: 10 * time.Second, SegmentSize: local.DefaultSegmentSize}
				if withSchemas {
					s, err := g.openStore(true)
					if err != nil {
						b.Fatal(err)
					}
					for _, typ := range types {
						if err := s.SetSchema(typ, []byte(benchSchema)); err != nil {
							b.Fatal(err)
						}
					}
					s.Close()
				}
				in, err := os.Open(input)
				if err != nil {
					b.Fatal(err)
				}
				g.IO.In = in
				b.StartTimer()
				start := time.Now()
				if err := runAppend(context.Background(), g, &appendOptions{Expect: "any", Quiet: true}, nil); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				in.Close()
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*events), "ns/event")
		})
	}
}
