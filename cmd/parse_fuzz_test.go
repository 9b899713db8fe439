package cmd

import (
	"strings"
	"testing"
)

// FuzzParseSize: a --max-bytes size is refused in one line, or is a
// whole number of bytes from 1 to 2^62.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1000000", "500MB", "64MiB", "10G", "1.5k", "0", "-1", "NaN", "nan", "Inf", "1e-9", "1e30", "B", "MiB", " 5 MB", "0.5B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if n < 1 || n > 1<<62 {
			t.Fatalf("%q is %d bytes", s, n)
		}
	})
}
