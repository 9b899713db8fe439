package local

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/archive"
	"github.com/evtdev/evt/log/archive/archivetest"
	"github.com/evtdev/evt/log/local/vfs"
)

// archiveWorld is a store whose arch-1 stream keeps its newest 5 of 60
// events under an archive rule, over several sealed segments, and what
// its envelopes were before compaction.
type archiveWorld struct {
	dir, arch string
	envs      map[uint64]string // position → envelope of every arch-1 event
}

func newArchiveWorld(t *testing.T) *archiveWorld {
	t.Helper()
	w := &archiveWorld{dir: filepath.Join(t.TempDir(), "store"), arch: filepath.Join(t.TempDir(), "a", "archive"), envs: map[uint64]string{}}
	s, err := Open(w.dir, Options{Create: true, SegmentSize: faultSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 6; i++ {
		b, _ := faultBatch(fmt.Sprintf("a%d", i), 10, "arch-1", "arch-1", "arch-1", "keep-1")
		if _, err := s.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	err = s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = append(r.Rules, log.Rule{Selection: "arch-*", MaxCount: 5, Archive: w.arch})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pos, env := range w.rawEnvelopes(t) {
		w.envs[pos] = env
	}
	return w
}

// rawEnvelopes are the envelopes of the arch-1 events the segments still
// hold, whether a read shows them or not.
func (w *archiveWorld) rawEnvelopes(t *testing.T) map[uint64]string {
	t.Helper()
	s, err := Open(w.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.committed()
	if err != nil {
		t.Fatal(err)
	}
	envs := map[uint64]string{}
	err = s.iterate(1, &c, func(rec *codec.Record) error {
		if !rec.Marker() && string(rec.Stream) == "arch-1" {
			envs[rec.Position] = string(codec.AppendRecordJSON(nil, rec))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

// archived reads every complete archive file (archivetest.Read).
func (w *archiveWorld) archived(t *testing.T, strict ...bool) map[uint64][]string {
	t.Helper()
	return archivetest.Read(t, w.arch, len(strict) > 0 && strict[0])
}

// check is the promise after any crash and a clean retry: every arch-1
// event is in the segments or archived, none archived twice, each
// archived envelope byte for byte what it was; and, once a clean
// compaction ran, only the newest five stay in the segments (the rest
// compaction reclaimed, all of them archived).
func (w *archiveWorld) check(t *testing.T, retried bool) {
	t.Helper()
	raw, arch := w.rawEnvelopes(t), w.archived(t, retried)
	for pos, env := range w.envs {
		a := arch[pos]
		archivetest.Once(t, pos, env, a)
		if _, ok := raw[pos]; !ok && len(a) == 0 {
			t.Errorf("position %d is gone and not archived", pos)
		}
	}
	if retried && len(raw) > 5+10 { // the active segment may keep a few
		t.Errorf("after a clean compaction the segments still hold %d arch-1 events", len(raw))
	}
	if retried && len(arch) < len(w.envs)-len(raw) {
		t.Errorf("%d archived, %d reclaimed", len(arch), len(w.envs)-len(raw))
	}
}

// more appends ten arch-1 events and notes their envelopes.
func (w *archiveWorld) more(t *testing.T) {
	t.Helper()
	s, err := Open(w.dir, Options{Create: true, SegmentSize: faultSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := faultBatch("more", 10, "arch-1")
	_, err = s.Append(context.Background(), b)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	for pos, env := range w.rawEnvelopes(t) {
		if _, ok := w.envs[pos]; !ok {
			w.envs[pos] = env
		}
	}
}

// compactWith runs one compaction through fsys.
func (w *archiveWorld) compactWith(fsys vfs.FS) error {
	s, err := Open(w.dir, Options{Create: true, SegmentSize: faultSegmentSize, Sync: SyncAlways, FS: fsys})
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Compact(context.Background(), nil)
	return err
}

func TestArchiveBeforeReclaim(t *testing.T) {
	w := newArchiveWorld(t)
	ffs := newFaultFS(faultRule{})
	if err := w.compactWith(ffs); err != nil {
		t.Fatal(err)
	}
	w.check(t, true)
	arch := w.archived(t)
	if len(arch) < 40 {
		t.Fatalf("archived %d events, want most of the 55 max-count removes", len(arch))
	}
	// The archive file is synced, renamed and its directory synced before
	// the first segment is rewritten or removed.
	ops := ffs.log()
	archived, reclaimed := -1, -1
	for i, op := range ops {
		if op == "syncdir archive" && archived < 0 {
			archived = i
		}
		if reclaimed < 0 && (strings.HasSuffix(op, ".seg.compact") || strings.HasPrefix(op, "remove ") && strings.HasSuffix(op, ".seg")) {
			reclaimed = i
		}
	}
	if archived < 0 || reclaimed < 0 || archived > reclaimed {
		t.Fatalf("archive synced at op %d, first reclaim at op %d:\n%s", archived, reclaimed, strings.Join(ops, "\n"))
	}
	// A second compaction archives nothing more.
	if err := w.compactWith(vfs.OS); err != nil {
		t.Fatal(err)
	}
	if n := len(w.archived(t)); n != len(arch) {
		t.Fatalf("a second compaction archived %d events, the first %d", n, len(arch))
	}
}

// TestArchiveCrash crashes the compaction at every operation from the
// first one on the archive up to the first reclaim (so between archive
// and reclaim too), as a kill (the page cache survives) and as a power
// cut (only what was synced survives), and fails each write, sync and
// rename of the archive file; a clean compaction then retries. Nothing
// may be archived twice or lost.
func TestArchiveCrash(t *testing.T) {
	clean := newArchiveWorld(t) // to learn the operations
	ffs := newFaultFS(faultRule{})
	if err := clean.compactWith(ffs); err != nil {
		t.Fatal(err)
	}
	ops := ffs.log()
	from, to := -1, -1
	for i, op := range ops {
		if from < 0 && (strings.HasPrefix(op, "mkdir ") || strings.Contains(op, archive.TempPrefix)) {
			from = i
		}
		if to < 0 && (strings.HasSuffix(op, ".seg.compact") || strings.HasPrefix(op, "remove ") && strings.HasSuffix(op, ".seg")) {
			to = i
		}
	}
	if from < 0 || to < from {
		t.Fatalf("no archive before the reclaim in:\n%s", strings.Join(ops, "\n"))
	}
	type fault struct {
		name     string
		rule     faultRule
		powerCut bool
	}
	var faults []fault
	for i := from; i <= to+1; i++ {
		faults = append(faults,
			fault{name: fmt.Sprintf("kill at %d (%s)", i+1, ops[i]), rule: faultRule{nth: i + 1, err: errCrash}},
			fault{name: fmt.Sprintf("power cut at %d (%s)", i+1, ops[i]), rule: faultRule{nth: i + 1, err: errCrash}, powerCut: true})
	}
	for _, op := range []string{"write", "sync"} {
		for _, errno := range []error{syscall.ENOSPC, syscall.EIO} {
			faults = append(faults,
				fault{name: fmt.Sprintf("%s first %v", op, errno), rule: faultRule{op: op, file: archive.TempPrefix + "*", nth: 1, err: errno}},
				fault{name: fmt.Sprintf("%s short %v", op, errno), rule: faultRule{op: op, file: archive.TempPrefix + "*", nth: 1, err: errno, short: op == "write"}})
		}
	}
	faults = append(faults,
		fault{name: "rename EIO", rule: faultRule{op: "rename", file: "*" + archive.Ext, nth: 1, err: syscall.EIO}},
		fault{name: "rename torn", rule: faultRule{op: "rename", file: "*" + archive.Ext, nth: 1, err: syscall.EIO, torn: true}},
		fault{name: "syncdir EIO", rule: faultRule{op: "syncdir", file: "archive", nth: 1, err: syscall.EIO}},
		fault{name: "mkdir ENOSPC", rule: faultRule{op: "mkdir", nth: 1, err: syscall.ENOSPC}})
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			w := newArchiveWorld(t)
			ffs := newFaultFS(f.rule)
			err := w.compactWith(ffs)
			if ffs.fired == "" {
				t.Fatalf("the fault never fired (err %v)", err)
			}
			if err == nil {
				t.Fatalf("compaction succeeded despite %s", ffs.fired)
			}
			if f.rule.err != errCrash && strings.Contains(ffs.fired, "archive") && !strings.Contains(err.Error(), "archive to ") {
				t.Errorf("error does not name the archive: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if f.powerCut {
				ffs.powerCut()
			}
			w.check(t, false)
			// More events before the retry: it removes more than the
			// crashed compaction would have, so its archive's range
			// differs from any file the crash left.
			w.more(t)
			if err := w.compactWith(vfs.OS); err != nil {
				t.Fatalf("retry: %v", err)
			}
			w.check(t, true)
		})
	}
}
