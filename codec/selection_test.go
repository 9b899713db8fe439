package codec

import (
	"strings"
	"testing"
)

func TestParseSelection(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		all      bool
		stream   string // set for a single stream
		matches  []string
		misses   []string
		err      string
	}{
		{name: "empty is all", in: "", all: true, matches: []string{"a", "account-7"}},
		{name: "star is all", in: "*", all: true, matches: []string{"a/b"}},
		{name: "one stream", in: "account-7", stream: "account-7", matches: []string{"account-7"}, misses: []string{"account-70"}},
		{name: "glob", in: "account-*", matches: []string{"account-", "account-7", "account-a/b"}, misses: []string{"accoun", "order-1"}},
		{name: "star crosses slashes", in: "a*z", matches: []string{"a/b/z"}, misses: []string{"a/b/y"}},
		{name: "question mark", in: "a?", matches: []string{"ab", "a/"}, misses: []string{"a", "abc"}},
		{name: "class", in: "[ab]-1", matches: []string{"a-1", "b-1"}, misses: []string{"c-1"}},
		{name: "bad class", in: "a[", err: "invalid stream pattern"},
		{name: "control character in a pattern", in: "a\x01*", err: "control character"},
		{name: "NUL in a pattern", in: "a\x00*", err: "control character"},
		{name: "invalid UTF-8 in a pattern", in: "a\xff*", err: "UTF-8"},
		{name: "control character in a name", in: "a\x01", err: "control character"},
		{name: "pattern too long", in: strings.Repeat("a", 4*MaxStreamLen) + "*", err: "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := ParseSelection(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseSelection(%q) = %v, want an error containing %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sel.All() != tc.all {
				t.Errorf("All() = %v", sel.All())
			}
			if s, ok := sel.Stream(); ok != (tc.stream != "") || s != tc.stream && ok {
				t.Errorf("Stream() = %q, %v; want %q", s, ok, tc.stream)
			}
			for _, m := range tc.matches {
				if !sel.Match(m) {
					t.Errorf("%q does not match %q", tc.in, m)
				}
			}
			for _, m := range tc.misses {
				if sel.Match(m) {
					t.Errorf("%q matches %q", tc.in, m)
				}
			}
		})
	}
}

// FuzzParseSelection: a selection parses, or fails with an error; what it
// parses to reads back the same from its String, and a single stream
// matches itself.
func FuzzParseSelection(f *testing.F) {
	for _, s := range []string{"", "*", "account-7", "account-*", "[a-c]?/x", "a[", "a\x00*"} {
		f.Add(s, "account-7")
	}
	f.Fuzz(func(t *testing.T, in, name string) {
		sel, err := ParseSelection(in)
		if err != nil {
			return
		}
		again, err := ParseSelection(sel.String())
		if err != nil || again != sel {
			t.Fatalf("%q parses as %+v, its String %q as %+v (%v)", in, sel, sel.String(), again, err)
		}
		if s, ok := sel.Stream(); ok && !sel.Match(s) {
			t.Fatalf("stream %q does not match itself", s)
		}
		_ = sel.Match(name) // never panics
	})
}
