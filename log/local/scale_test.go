package local

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/evtdev/evt/log"
)

// segmentReads counts the reads of segment files in a faultFS's log.
func segmentReads(ff *faultFS) int {
	n := 0
	for _, op := range ff.log() {
		if strings.HasPrefix(op, "read ") && strings.HasSuffix(op, ".seg") {
			n++
		}
	}
	return n
}

// TestStreamsWithPrefixReadsOnlyMatches: listing the streams of a glob
// with a literal prefix reads the heads of the streams with that prefix,
// not every stream's (Streams reads one record per stream), and answers
// what Streams answers.
func TestStreamsWithPrefixReadsOnlyMatches(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	var names []string
	for i := range 1000 {
		names = append(names, fmt.Sprintf("account-%03d", i))
	}
	appendStreams(t, s, names...)
	appendStreams(t, s, "account-010", "account-011") // new heads, later in the log
	if _, err := s.Delete("account-012", log.Expectation{}); err != nil {
		t.Fatal(err)
	}
	match := func(name string) bool { return strings.HasPrefix(name, "account-01") }

	ff := newFaultFS(faultRule{})
	r, err := Open(dir, Options{FS: ff})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before := segmentReads(ff)
	got, err := r.StreamsWithPrefix("account-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	reads := segmentReads(ff) - before
	want, err := r.Streams(match)
	if err != nil {
		t.Fatal(err)
	}
	all := segmentReads(ff) - before - reads
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("StreamsWithPrefix:\n%v\nStreams:\n%v", got, want)
	}
	if len(got) != 9 {
		t.Errorf("%d streams, want 9 (account-010 to -019 but the deleted -012)", len(got))
	}
	// Ten heads, and what the view reads; Streams reads a thousand.
	if reads > 40 {
		t.Errorf("StreamsWithPrefix read segments %d times for 10 streams (Streams: %d)", reads, all)
	}
	if all < 1000 {
		t.Errorf("Streams read segments only %d times: the test no longer tells the two apart", all)
	}
}
