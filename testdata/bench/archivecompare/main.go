// Command archivecompare measures the two compressions considered for
// retention archives (evt retention set --archive): gzip from the
// standard library and zstd from github.com/klauspost/compress, on
// NDJSON envelopes like the ones evt export prints. It prints, per
// codec, the compressed size and the time to compress and decompress.
// evt writes gzip: zstd wins here (about half the size, faster both
// ways), but linking it costs every evt process 0.16-0.18 ms of package
// initialisation (log/archive's package comment has the figures).
//
//	go run ./testdata/bench/archivecompare [-n 200000]
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
)

func main() {
	n := flag.Int("n", 200000, "events")
	flag.Parse()
	var raw bytes.Buffer
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= *n; i++ {
		fmt.Fprintf(&raw, `{"position":%d,"stream":"account-%d","version":%d,"type":"Deposited","time":"%s","id":"01JDX%021d","data":{"amount":%d,"currency":"EUR","note":"payment %d"},"metadata":{"correlation_id":"c-%d"}}`+"\n",
			i, i%1000, i/1000+1, t0.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i*7919, i%500, i, i/3)
	}
	fmt.Printf("input: %d events, %d bytes\n", *n, raw.Len())
	type codec struct {
		name string
		enc  func(w io.Writer) io.WriteCloser
		dec  func(r io.Reader) io.Reader
	}
	codecs := []codec{
		{"gzip -6 (default)", func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) },
			func(r io.Reader) io.Reader { z, _ := gzip.NewReader(r); return z }},
		{"gzip -1 (BestSpeed)", func(w io.Writer) io.WriteCloser { z, _ := gzip.NewWriterLevel(w, gzip.BestSpeed); return z },
			func(r io.Reader) io.Reader { z, _ := gzip.NewReader(r); return z }},
		{"zstd default", func(w io.Writer) io.WriteCloser { z, _ := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1)); return z },
			func(r io.Reader) io.Reader { z, _ := zstd.NewReader(r, zstd.WithDecoderConcurrency(1)); return z }},
		{"zstd better", func(w io.Writer) io.WriteCloser {
			z, _ := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
			return z
		}, func(r io.Reader) io.Reader { z, _ := zstd.NewReader(r, zstd.WithDecoderConcurrency(1)); return z }},
	}
	for _, c := range codecs {
		var out bytes.Buffer
		start := time.Now()
		w := c.enc(&out)
		w.Write(raw.Bytes())
		w.Close()
		enc := time.Since(start)
		start = time.Now()
		got, _ := io.ReadAll(c.dec(bytes.NewReader(out.Bytes())))
		dec := time.Since(start)
		if !bytes.Equal(got, raw.Bytes()) {
			panic(c.name + ": round trip differs")
		}
		fmt.Printf("%-20s %10d bytes (%.1f%%)  compress %6.1f MB/s  decompress %6.1f MB/s\n", c.name, out.Len(),
			100*float64(out.Len())/float64(raw.Len()), float64(raw.Len())/enc.Seconds()/1e6, float64(raw.Len())/dec.Seconds()/1e6)
	}
}
