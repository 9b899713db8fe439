package natsjs

import (
	"strings"
	"testing"

	"github.com/evtdev/evt/codec"
)

// TestSubjects: every stream name makes a subject the server accepts
// (tokens non-empty, no whitespace, no wildcard tokens) that gives the
// name back, in its category's bucket.
func TestSubjects(t *testing.T) {
	s := &Store{root: "evt"}
	for _, name := range []string{"account-7", "a.b-c d", "%", "%41", ">", "*x", "-lead", "tab\there", "ünï-cöde", "x>", strings.Repeat("é", 127)} {
		subj := s.subjectOf(name)
		tokens := strings.Split(subj, ".")
		if len(tokens) != 4 {
			t.Errorf("%q: subject %q has %d tokens", name, subj, len(tokens))
		}
		for _, tok := range tokens {
			if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n\f") {
				t.Errorf("%q: subject %q has the bad token %q", name, subj, tok)
			}
		}
		if got := s.streamOf(subj); got != name {
			t.Errorf("%q: subject %q gives back %q", name, subj, got)
		}
	}
	if got := s.filterOf(mustSel(t, "account-*")); got != "evt.*.account.>" {
		t.Errorf("filter of account-*: %q", got)
	}
	if got := s.filterOf(mustSel(t, "acc*")); got != "evt.>" {
		t.Errorf("filter of acc*: %q", got)
	}
}

func mustSel(t *testing.T, s string) codec.Selection {
	t.Helper()
	sel, err := codec.ParseSelection(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}
