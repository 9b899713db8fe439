package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

func openTest(t *testing.T, dir string, segSize int64) *Store {
	t.Helper()
	s, err := Open(dir, Options{Create: true, SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendN(t *testing.T, s *Store, stream string, n int) []log.Result {
	t.Helper()
	var b log.Batch
	for i := 0; i < n; i++ {
		if err := b.Add(stream, "Happened", "", []byte(fmt.Sprintf(`{"i":%d}`, i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Append(context.Background(), &b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestAppendReadVerify(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 4096)
	for i := 0; i < 50; i++ {
		appendN(t, s, fmt.Sprintf("s-%d", i%7), 1+i%3)
	}
	info, err := s.Head("s-3")
	if err != nil {
		t.Fatal(err)
	}
	if info.Version == 0 || info.LastType != "Happened" {
		t.Fatalf("head %+v", info)
	}
	if _, err := s.Head("nope"); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("missing stream: %v", err)
	}
	var n uint64
	if _, err := s.Scan(1, func(rec *codec.Record) error {
		n++
		if rec.Position != n {
			return fmt.Errorf("position %d at %d", rec.Position, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != n || rep.Segments < 3 || rep.Streams != 7 {
		t.Fatalf("report %+v, scanned %d", rep, n)
	}
	// A fresh reader sees the same.
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	streams, err := r.Streams(nil)
	if err != nil || len(streams) != 7 {
		t.Fatalf("streams %v %v", streams, err)
	}
	if _, err := s.Repair(context.Background(), false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "s-1", 2)
	if _, err := r.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestExpectAndIdempotency(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	var b log.Batch
	b.Add("a-1", "T", "id-1", []byte(`{}`), nil)
	b.Expect("a-1", log.Expectation{Kind: log.ExpectNone})
	if _, err := s.Append(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	// retry of the same batch: a no-op that reports the original
	res, err := s.Append(context.Background(), &b)
	if err != nil || !res[0].Duplicate || res[0].Position != 1 {
		t.Fatalf("retry: %+v %v", res, err)
	}
	var c log.Batch
	c.Add("a-1", "T", "", []byte(`{}`), nil)
	c.Expect("a-1", log.Expectation{Kind: log.ExpectVersion, Version: 5})
	if _, err := s.Append(context.Background(), &c); !errors.Is(err, log.ErrConflict) {
		t.Fatalf("conflict: %v", err)
	}
	c.Expect("a-1", log.Expectation{Kind: log.ExpectVersion, Version: 1})
	res, err = s.Append(context.Background(), &c)
	if err != nil || res[0].Version != 2 || res[0].Position != 2 {
		t.Fatalf("append: %+v %v", res, err)
	}
}

// The id key is the key of "stream\x00id", computed without allocating;
// the two must agree or ids stored by one would be missed by the other.
func TestIDKeyMatchesKeyOf(t *testing.T) {
	for _, c := range [][2]string{{"a-1", "id"}, {"", ""}, {"ä-☃", "01JDX"}} {
		if idKey(c[0], c[1]) != keyOf(c[0]+"\x00"+c[1]) || idKeyBytes(c[0], []byte(c[1])) != idKey(c[0], c[1]) {
			t.Fatalf("idKey(%q, %q) differs from keyOf", c[0], c[1])
		}
	}
}

func TestLockTimeoutNamesHolder(t *testing.T) {
	dir := t.TempDir()
	holder := openTest(t, dir, 0)
	appendN(t, holder, "a-1", 1)
	if err := holder.lock.acquire(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	defer holder.lock.release()
	waiter, err := Open(dir, Options{Create: true, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	var b log.Batch
	b.Add("a-1", "T", "", []byte(`{}`), nil)
	_, err = waiter.Append(context.Background(), &b)
	if !errors.Is(err, log.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("got %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
}

func TestSyncPolicies(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNone} {
		got, err := ParseSyncPolicy(p.String())
		if err != nil || got != p {
			t.Fatalf("%v: %v %v", p, got, err)
		}
		s, err := Open(t.TempDir(), Options{Create: true, Sync: p, SyncInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			appendN(t, s, "a-1", 2)
			time.Sleep(2 * time.Millisecond)
		}
		if _, err := s.Verify(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if _, err := ParseSyncPolicy("sometimes"); err == nil {
		t.Fatal("sometimes accepted")
	}
}

// An Appender's parts are invisible until Commit; Abort leaves the store
// as it was, even after parts were written to the segment.
func TestAppenderParts(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	appendN(t, s, "a-1", 3)
	part := func(stream string, n int) *log.Batch {
		var b log.Batch
		for i := 0; i < n; i++ {
			b.Add(stream, "T", "", []byte(`{"pad":"`+strings.Repeat("x", 1000)+`"}`), nil)
		}
		return &b
	}
	a, err := s.beginAppend(context.Background(), nil, log.Expectation{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // 3 × 6 MB: past the 4 MiB flush, twice
		if err := a.Add(part("a-2", 6000)); err != nil {
			t.Fatal(err)
		}
	}
	a.Abort()
	if _, err := s.Head("a-2"); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("aborted stream visible: %v", err)
	}
	if rep, err := s.Verify(context.Background(), nil); err != nil || rep.Events != 3 {
		t.Fatalf("after abort: %+v %v", rep, err)
	}
	// A conflict found in a later part aborts the whole batch.
	a, err = s.beginAppend(context.Background(), map[string]log.Expectation{"a-1": {Kind: log.ExpectVersion, Version: 1}}, log.Expectation{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add(part("a-3", 5000)); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(part("a-1", 1)); !errors.Is(err, log.ErrConflict) {
		t.Fatalf("want a conflict, got %v", err)
	}
	a.Abort()
	// Parts that commit: all there, one batch, dense.
	a, err = s.beginAppend(context.Background(), nil, log.Expectation{Kind: log.ExpectNone})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := a.Add(part(fmt.Sprintf("b-%d", i), 4000)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := a.Commit()
	if err != nil || len(res) != 12000 || res[0].Position != 4 || res[11999].Position != 12003 {
		t.Fatalf("commit: %d results, %v", len(res), err)
	}
	if rep, err := s.Verify(context.Background(), nil); err != nil || rep.Events != 12003 {
		t.Fatalf("after commit: %+v %v", rep, err)
	}
}

// fileExists reports whether p is there.
func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
