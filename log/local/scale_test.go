package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
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
	if _, err := s.Delete(context.Background(), "account-012", log.Expectation{}); err != nil {
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

// TestGroupLagWithoutScan: the lag of a group that reads every stream of
// a log without limits is counted from positions and offsets files: the
// same lag and oldest time as the scan, with a few reads of segments
// where the scan reads every segment of the backlog. The log has
// segments compacted under a rule since removed (holes in positions) and
// events read ahead and acked out of order.
func TestGroupLagWithoutScan(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 4096)
	ctx := context.Background()
	for i := range 20 {
		var b log.Batch
		for j := range 30 {
			if err := b.Add(fmt.Sprintf("b-%d", j%3), "Happened", "", []byte(fmt.Sprintf(`{"i":%d}`, i*30+j)), nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Append(ctx, &b); err != nil {
			t.Fatal(err)
		}
		appendN(t, s, fmt.Sprintf("a-%d", i), 5)
	}
	setRules := func(rules []log.Rule) {
		t.Helper()
		if err := s.UpdateRetention(func(r *log.Retention) error { r.Rules = rules; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	setRules([]log.Rule{{Selection: "b-*", MaxCount: 1}})
	if rep, err := s.Compact(ctx, nil); err != nil || rep.Dropped == 0 {
		t.Fatalf("compact: %+v, %v", rep, err)
	}
	setRules(nil)

	if err := s.CreateGroup(ctx, log.GroupConfig{Name: "g", AckWait: time.Minute, MaxDeliver: 5, Ordering: "none"}, 1); err != nil {
		t.Fatal(err)
	}
	ff := newFaultFS(faultRule{})
	r, err := Open(dir, Options{FS: ff})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	g, err := r.openGroup("g")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m, err := g.join(log.MemberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ds, _, err := m.Lease(ctx, 6, false)
	if err != nil || len(ds) != 6 {
		t.Fatalf("lease: %d, %v", len(ds), err)
	}
	if err := m.Ack(ctx, ds[1].Event.Position, ds[4].Event.Position); err != nil {
		t.Fatal(err)
	}
	st, err := g.read()
	if err != nil {
		t.Fatal(err)
	}
	before := segmentReads(ff)
	var quick log.GroupStatus
	if err := g.quickLag(st, &quick); err != nil {
		t.Fatalf("quickLag: %v", err)
	}
	quickReads := segmentReads(ff) - before
	var scanned log.GroupStatus
	if err := g.scanLag(st, &scanned); err != nil {
		t.Fatal(err)
	}
	scanReads := segmentReads(ff) - before - quickReads
	if quick.Lag != scanned.Lag || !quick.Oldest.Equal(scanned.Oldest) {
		t.Fatalf("quick lag %d oldest %v; scan %d oldest %v", quick.Lag, quick.Oldest, scanned.Lag, scanned.Oldest)
	}
	firsts, err := r.segmentList(mustCommitted(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if scanReads < len(firsts) {
		t.Fatalf("the scan read segments %d times for %d segments: the test no longer tells the two apart", scanReads, len(firsts))
	}
	t.Logf("segment reads: quickLag %d, scan %d, %d segments", quickReads, scanReads, len(firsts))
	if quickReads > 8 {
		t.Errorf("quickLag read segments %d times (the scan: %d, %d segments)", quickReads, scanReads, len(firsts))
	}
	status, err := g.Status(ctx)
	if err != nil || status.Lag != scanned.Lag {
		t.Fatalf("Status: lag %d, %v; want %d", status.Lag, err, scanned.Lag)
	}

	// With a rule, or for a group of some streams, the scan counts.
	setRules([]log.Rule{{Selection: "b-*", MaxCount: 1}})
	if err := g.quickLag(st, &quick); !errors.Is(err, errLagScan) {
		t.Errorf("quickLag with a rule: %v, want errLagScan", err)
	}
}

func mustCommitted(t *testing.T, s *Store) *commitState {
	t.Helper()
	c, err := s.committed()
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestCompactNothingToDoReadsNoSegment: on a log no limit applies to,
// compaction reads no sealed segment (it used to scan every one), and
// still removes nothing and reports every segment.
func TestCompactNothingToDoReadsNoSegment(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 4096)
	for i := range 10 {
		appendN(t, s, fmt.Sprintf("a-%d", i), 30)
	}
	s.Close()
	cf := &countFS{FS: vfs.OS}
	w, err := Open(dir, Options{Create: true, FS: cf, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Compact(context.Background(), nil); err != nil { // chains the segments once
		t.Fatal(err)
	}
	cf.bytes.Store(0)
	rep, err := w.Compact(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Dropped != 0 || rep.Segments < 5 || rep.BytesAfter != rep.BytesBefore {
		t.Fatalf("compact: %+v", rep)
	}
	// The active segment (which may be sealed if enough of it went) and
	// a header per segment; a scan reads every sealed segment whole.
	if n, most := cf.bytes.Load(), int64(4096+64*rep.Segments+64); n > most {
		t.Errorf("compaction with nothing to do read %d bytes of segments (%d sealed segments, %d bytes)", n, rep.Segments, rep.BytesBefore)
	}
	if got := len(visibleEvents(t, w)); got != 300 {
		t.Errorf("%d events after, want 300", got)
	}
}

// countFS counts the bytes read from segment files.
type countFS struct {
	vfs.FS
	bytes atomic.Int64
}

func (c *countFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".seg") {
		return f, err
	}
	return &countFile{File: f, n: &c.bytes}, nil
}

type countFile struct {
	vfs.File
	n *atomic.Int64
}

func (f *countFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.n.Add(int64(n))
	return n, err
}

func (f *countFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.n.Add(int64(n))
	return n, err
}
