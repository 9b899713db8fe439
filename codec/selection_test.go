package codec

import (
	"reflect"
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
		if err != nil || !reflect.DeepEqual(again, sel) {
			t.Fatalf("%q parses as %+v, its String %q as %+v (%v)", in, sel, sel.String(), again, err)
		}
		if s, ok := sel.Stream(); ok && !sel.Match(s) {
			t.Fatalf("stream %q does not match itself", s)
		}
		_ = sel.Match(name) // never panics
	})
}

// TestUnion: several selections pick what any of them picks; every
// stream in a union is every stream; one part alone is that part.
func TestUnion(t *testing.T) {
	parse := func(s string) Selection {
		t.Helper()
		sel, err := ParseSelection(s)
		if err != nil {
			t.Fatal(err)
		}
		return sel
	}
	u := Union(parse("course-7"), parse("student-*"), parse("course-7"))
	if _, ok := u.Stream(); ok || u.All() {
		t.Fatalf("union %q is a single stream or every stream", u)
	}
	if got := u.String(); got != "course-7 student-*" {
		t.Errorf("String = %q", got)
	}
	if len(u.Parts()) != 2 {
		t.Errorf("Parts = %v, want 2 (repeats count once)", u.Parts())
	}
	for name, want := range map[string]bool{"course-7": true, "student-3": true, "course-8": false, "x": false} {
		if u.Match(name) != want {
			t.Errorf("Match(%q) = %v, want %v", name, !want, want)
		}
	}
	if !Union(parse("a-1"), parse("*")).All() {
		t.Error("a union with every stream is not every stream")
	}
	if s, ok := Union(parse("a-1")).Stream(); !ok || s != "a-1" {
		t.Error("a union of one stream is not that stream")
	}
	if !Union().All() {
		t.Error("an empty union is not every stream")
	}
	if got := Union(u, parse("room-1")).Parts(); len(got) != 3 {
		t.Errorf("a union of a union: %v, want 3 parts", got)
	}
}

// TestSelectionPrefix: the prefix is a start every selected name has,
// and as long as the pattern allows.
func TestSelectionPrefix(t *testing.T) {
	parse := func(s string) Selection {
		sel, err := ParseSelection(s)
		if err != nil {
			t.Fatal(err)
		}
		return sel
	}
	for _, tc := range []struct {
		sel  Selection
		want string
	}{
		{parse(""), ""},
		{parse("*"), ""},
		{parse("account-7*"), "account-7"},
		{parse("acc?unt"), "acc"},
		{parse("[ab]-*"), ""},
		{parse("account-7"), "account-7"},
		{Union(parse("account-1*"), parse("account-2")), "account-"},
		{Union(parse("account-1*"), parse("order-*")), ""},
	} {
		if got := tc.sel.Prefix(); got != tc.want {
			t.Errorf("%v: prefix %q, want %q", tc.sel, got, tc.want)
		}
	}
}
