package log

import (
	"strings"
	"testing"
)

// FuzzParseExpectation: an --expect value is refused in one line, or
// reads back the same from the text it prints.
func FuzzParseExpectation(f *testing.F) {
	for _, s := range []string{"any", "", "none", "exists", "0", "1", "18446744073709551615", "18446744073709551616", "-1", "+1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseExpectation(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if e.Kind == ExpectVersion && e.Version == 0 {
			t.Fatalf("%q expects version 0 (that is none)", s)
		}
		text := map[ExpectKind]string{ExpectAny: "any", ExpectNone: "none", ExpectExists: "exists"}[e.Kind]
		if e.Kind == ExpectVersion {
			text = e.String()
		}
		again, err := ParseExpectation(text)
		if err != nil || again != e {
			t.Fatalf("%q is %+v, written %q, which reads as %+v, %v", s, e, text, again, err)
		}
	})
}
