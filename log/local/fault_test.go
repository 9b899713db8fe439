package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// The fault tests run every writer of the store through faultFS, once
// clean to learn the operations it makes, then once per fault: each kind
// of failure at the first and the last operation of its kind on each
// file, and a crash at every operation. After each:
//
//   - the writer returned a one-line error that names the failure (or
//     succeeded, when the failed operation was one it may skip, such as
//     removing a leftover; then what it wrote counts as acknowledged);
//   - the same Store either refuses the next append or takes it durably;
//   - the next writer opens the store (recovering), evt verify passes,
//     every acknowledged event is there once, each batch that failed is
//     whole or absent, group state and retention rules read, and new
//     appends work.
//
// These replace the strace fault injection of cmd/torture: the same
// faults, on every writer rather than the segment alone, in process.

// faultSegmentSize makes segments roll every few batches.
const faultSegmentSize = 8 << 10

// faultWorld is a store and what its tests know was acknowledged.
type faultWorld struct {
	dir   string
	acked map[string]string // id → stream
	// tried are the batches of failed writes: each whole or absent.
	tried [][]string
	// cut streams may lose events (deleted, truncated, compacted away).
	cut map[string]bool
	// group is the group a test made, checked after the fault.
	group string
	// damaged: derived files were removed before the writer ran (the
	// repair test); after a fault, evt repair must still fix it.
	damaged bool
}

func (w *faultWorld) opts(fsys vfs.FS) Options {
	return Options{Create: true, Sync: SyncAlways, SegmentSize: faultSegmentSize, FS: fsys}
}

// batch makes n events with fresh ids over streams, named by prefix.
func faultBatch(prefix string, n int, streams ...string) (*log.Batch, []string) {
	var b log.Batch
	var ids []string
	pad := strings.Repeat("x", 100)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s.%d", prefix, i)
		b.Add(streams[i%len(streams)], "T", id, []byte(`{"pad":"`+pad+`"}`), nil)
		ids = append(ids, id)
	}
	return &b, ids
}

// appendBatch appends through s and books the outcome.
func (w *faultWorld) appendBatch(s *Store, b *log.Batch, ids []string) error {
	rs, err := s.Append(context.Background(), b)
	if err != nil {
		w.tried = append(w.tried, ids)
		return err
	}
	for i, r := range rs {
		w.acked[ids[i]] = r.Stream
	}
	return nil
}

// newFaultWorld makes a store of 40 events in four streams over a few
// segments, with the real file system.
func newFaultWorld(t *testing.T) *faultWorld {
	t.Helper()
	w := &faultWorld{dir: filepath.Join(t.TempDir(), "store"), acked: map[string]string{}, cut: map[string]bool{}}
	s, err := Open(w.dir, w.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 4; i++ {
		b, ids := faultBatch(fmt.Sprintf("setup%d", i), 10, "acct-1", "acct-2", "acct-3", "acct-4")
		if err := w.appendBatch(s, b, ids); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// faultWriter is one writer of the store, run through fsys.
type faultWriter struct {
	name string
	// setup prepares a world (nil: newFaultWorld).
	setup func(t *testing.T) *faultWorld
	// run makes the write; it opens the store itself (opening is a
	// writer too) and returns it, if it got that far, for the follow-up
	// append on the same Store.
	run func(w *faultWorld, fsys vfs.FS) (*Store, error)
}

// withStore opens the store through fsys and runs fn on it.
func withStore(w *faultWorld, fsys vfs.FS, fn func(s *Store) error) (*Store, error) {
	s, err := Open(w.dir, w.opts(fsys))
	if err != nil {
		return nil, err
	}
	return s, fn(s)
}

func faultWriters() []faultWriter {
	return []faultWriter{
		{name: "create", setup: func(t *testing.T) *faultWorld {
			return &faultWorld{dir: filepath.Join(t.TempDir(), "store"), acked: map[string]string{}, cut: map[string]bool{}}
		}, run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				b, ids := faultBatch("new", 3, "first-1")
				return w.appendBatch(s, b, ids)
			})
		}},
		{name: "append", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				b, ids := faultBatch("one", 1, "acct-1")
				return w.appendBatch(s, b, ids)
			})
		}},
		{name: "append-roll", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			// Batches of about half a segment: the second or third seals
			// the active segment and starts the next.
			return withStore(w, fsys, func(s *Store) error {
				for i := 0; i < 3; i++ {
					b, ids := faultBatch(fmt.Sprintf("roll%d", i), 30, "acct-1", "acct-2", "roll-1")
					if err := w.appendBatch(s, b, ids); err != nil {
						return err
					}
				}
				return nil
			})
		}},
		{name: "append-new-streams", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			// More new streams than the heads table and id index have
			// room for: both grow (a new file renamed over the old).
			return withStore(w, fsys, func(s *Store) error {
				var streams []string
				for i := 0; i < 600; i++ {
					streams = append(streams, fmt.Sprintf("many-%d", i))
				}
				b, ids := faultBatch("many", 600, streams...)
				return w.appendBatch(s, b, ids)
			})
		}},
		{name: "bulk", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			// One batch added in parts, as evt append from a file does.
			return withStore(w, fsys, func(s *Store) error {
				a, err := s.beginAppend(context.Background(), nil, log.Expectation{})
				if err != nil {
					return err
				}
				var all []string
				for i := 0; i < 3; i++ {
					b, ids := faultBatch(fmt.Sprintf("bulk%d", i), 25, "acct-3", "bulk-1")
					all = append(all, ids...)
					if err := a.Add(b); err != nil {
						a.Abort()
						w.tried = append(w.tried, all)
						return err
					}
				}
				rs, err := a.Commit()
				if err != nil {
					w.tried = append(w.tried, all)
					return err
				}
				for i, r := range rs {
					w.acked[all[i]] = r.Stream
				}
				return nil
			})
		}},
		{name: "bulk-ids", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			// One batch of given ids in parts (evt import) that grows the
			// id table as it goes (a part of 600 on a table of 1,024
			// slots), then repeats ids of its first part and of the
			// store: retries found in the table, read back from the
			// batch or the log, never written twice.
			return withStore(w, fsys, func(s *Store) error {
				a, err := s.beginAppend(context.Background(), nil, log.Expectation{})
				if err != nil {
					return err
				}
				first, firstIDs := faultBatch("grow", 600, "acct-3", "bulk-1")
				again, _ := faultBatch("grow", 50, "acct-3", "bulk-1")
				old, oldIDs := faultBatch("setup0", 10, "acct-1", "acct-2", "acct-3", "acct-4")
				var all []string
				for _, part := range []struct {
					b   *log.Batch
					ids []string
				}{{first, firstIDs}, {again, firstIDs[:50]}, {old, oldIDs}} {
					all = append(all, part.ids...)
					if err := a.Add(part.b); err != nil {
						a.Abort()
						w.tried = append(w.tried, firstIDs)
						return err
					}
				}
				rs, err := a.Commit()
				if err != nil {
					w.tried = append(w.tried, firstIDs)
					return err
				}
				if len(rs) != len(all) {
					return fmt.Errorf("%d results for %d events", len(rs), len(all))
				}
				for i, r := range rs {
					if dup := i >= len(firstIDs); r.Duplicate != dup {
						return fmt.Errorf("event %d (%s): duplicate %v, want %v", i, all[i], r.Duplicate, dup)
					}
					if r.ID != all[i] {
						return fmt.Errorf("event %d: result names id %s, want %s", i, r.ID, all[i])
					}
					w.acked[all[i]] = r.Stream
				}
				return nil
			})
		}},
		{name: "delete", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			w.cut["acct-1"] = true
			return withStore(w, fsys, func(s *Store) error {
				_, err := s.Delete(context.Background(), "acct-1", log.Expectation{})
				return err
			})
		}},
		{name: "truncate", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			w.cut["acct-2"] = true
			return withStore(w, fsys, func(s *Store) error {
				_, err := s.Truncate(context.Background(), "acct-2", 5, log.Expectation{})
				return err
			})
		}},
		{name: "compact", setup: func(t *testing.T) *faultWorld {
			w := newFaultWorld(t)
			s, err := Open(w.dir, w.opts(nil))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			w.cut["acct-1"], w.cut["acct-2"] = true, true
			if _, err := s.Delete(context.Background(), "acct-1", log.Expectation{}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Truncate(context.Background(), "acct-2", 8, log.Expectation{}); err != nil {
				t.Fatal(err)
			}
			b, ids := faultBatch("more", 60, "acct-3", "acct-4")
			if err := w.appendBatch(s, b, ids); err != nil {
				t.Fatal(err)
			}
			return w
		}, run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				rep, err := s.Compact(context.Background(), nil)
				if err == nil && rep.Segments == 0 {
					return errors.New("compaction found no sealed segment: the test needs one")
				}
				return err
			})
		}},
		{name: "compact-sparse", setup: sparseFaultWorld, run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			// The segment compacted into the sparse offsets form loses
			// more: generation 2 from a sparse generation 1.
			return withStore(w, fsys, func(s *Store) error {
				rep, err := s.Compact(context.Background(), nil)
				if err == nil && rep.Rewritten == 0 {
					return errors.New("compaction rewrote no segment: the test needs one")
				}
				return err
			})
		}},
		{name: "repair-sparse", setup: func(t *testing.T) *faultWorld {
			// A sparse offsets file and the tables lost.
			w := sparseFaultWorld(t)
			w.damaged = true
			names, _ := filepath.Glob(filepath.Join(w.dir, "*.sidx"))
			for _, name := range append(names, filepath.Join(w.dir, headsFile), filepath.Join(w.dir, idsFile)) {
				if err := os.Remove(name); err != nil {
					t.Fatal(err)
				}
			}
			return w
		}, run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				_, err := s.Repair(context.Background(), false, nil)
				return err
			})
		}},
		{name: "retention", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				return s.UpdateRetention(func(r *log.Retention) error {
					r.Rules = append(r.Rules, log.Rule{Selection: "acct-*", MaxCount: 1000})
					return nil
				})
			})
		}},
		{name: "repair", setup: func(t *testing.T) *faultWorld {
			// Derived files lost: the tables and the first segment's offsets.
			w := newFaultWorld(t)
			w.damaged = true
			for _, name := range []string{headsFile, idsFile, offsetsName(1)} {
				if err := os.Remove(filepath.Join(w.dir, name)); err != nil {
					t.Fatal(err)
				}
			}
			return w
		}, run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				_, err := s.Repair(context.Background(), false, nil)
				return err
			})
		}},
		{name: "rebuild-tables", setup: func(t *testing.T) *faultWorld {
			w := newFaultWorld(t)
			if err := os.Remove(filepath.Join(w.dir, headsFile)); err != nil {
				t.Fatal(err)
			}
			return w
		}, run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			// The first append after the heads table was lost rebuilds it.
			return withStore(w, fsys, func(s *Store) error {
				b, ids := faultBatch("after", 2, "acct-4")
				return w.appendBatch(s, b, ids)
			})
		}},
		{name: "chain", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				_, _, err := s.VerifyChain()
				return err
			})
		}},
		{name: "snapshot", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				info, err := s.Head("acct-3")
				if err != nil {
					return err
				}
				return s.SaveSnapshot("fp", "acct-3", log.Snapshot{Version: info.Version, Position: info.Last, State: []byte(`{"n":1}`)})
			})
		}},
		{name: "group-create", run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			w.group = "g2"
			return withStore(w, fsys, func(s *Store) error {
				return s.CreateGroup(context.Background(), log.GroupConfig{Name: "g2", Selection: "acct-*", AckWait: time.Minute, Ordering: "stream"}, 1)
			})
		}},
		{name: "group-ack", setup: faultGroupWorld, run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				ctx := context.Background()
				g, err := s.openGroup(w.group)
				if err != nil {
					return err
				}
				defer g.Close()
				m, err := g.join(log.MemberOptions{})
				if err != nil {
					return err
				}
				defer m.Close()
				ds, _, err := m.Lease(ctx, 5, false)
				if err != nil {
					return err
				}
				var ps []uint64
				for _, d := range ds {
					ps = append(ps, d.Event.Position)
				}
				return m.Ack(ctx, ps...)
			})
		}},
		{name: "group-reset", setup: faultGroupWorld, run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error {
				g, err := s.openGroup(w.group)
				if err != nil {
					return err
				}
				defer g.Close()
				_, err = g.Reset(context.Background(), 20, false)
				return err
			})
		}},
		{name: "group-rm", setup: faultGroupWorld, run: func(w *faultWorld, fsys vfs.FS) (*Store, error) {
			return withStore(w, fsys, func(s *Store) error { return s.RemoveGroup(context.Background(), w.group) })
		}},
	}
}

// faultGroupWorld is a world with a consumer group g1 over acct-*.
func faultGroupWorld(t *testing.T) *faultWorld {
	w := newFaultWorld(t)
	s, err := Open(w.dir, w.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w.group = "g1"
	if err := s.CreateGroup(context.Background(), log.GroupConfig{Name: "g1", Selection: "acct-*", AckWait: time.Minute, Ordering: "stream"}, 1); err != nil {
		t.Fatal(err)
	}
	return w
}

// faultCase is one injected failure.
type faultCase struct {
	name string
	rule faultRule
}

// faultCases lists the failures to inject into a writer whose clean run
// made ops: for each file and kind of operation, the failures that kind
// can have, at its first and last occurrence; then a crash at every
// operation.
func faultCases(ops []string, crashes bool) []faultCase {
	type key struct{ op, file string }
	count := map[key]int{}
	var keys []key
	for _, o := range ops {
		op, file, _ := strings.Cut(o, " ")
		k := key{op, file}
		if count[k] == 0 {
			keys = append(keys, k)
		}
		count[k]++
	}
	kinds := map[string][]faultCase{
		"open":     {{"EIO", faultRule{err: syscall.EIO}}, {"ENOSPC", faultRule{err: syscall.ENOSPC}}},
		"write":    {{"EIO", faultRule{err: syscall.EIO}}, {"ENOSPC", faultRule{err: syscall.ENOSPC}}, {"short-ENOSPC", faultRule{err: syscall.ENOSPC, short: true}}},
		"sync":     {{"EIO", faultRule{err: syscall.EIO}}},
		"syncdir":  {{"EIO", faultRule{err: syscall.EIO}}},
		"rename":   {{"EIO", faultRule{err: syscall.EIO}}, {"torn-EIO", faultRule{err: syscall.EIO, torn: true}}},
		"remove":   {{"EIO", faultRule{err: syscall.EIO}}},
		"mkdir":    {{"ENOSPC", faultRule{err: syscall.ENOSPC}}},
		"truncate": {{"EIO", faultRule{err: syscall.EIO}}},
		"allocate": {{"ENOSPC", faultRule{err: syscall.ENOSPC}}},
	}
	var cases []faultCase
	for _, k := range keys {
		nths := []int{1}
		if count[k] > 1 {
			nths = append(nths, count[k])
		}
		for _, nth := range nths {
			for _, c := range kinds[k.op] {
				r := c.rule
				r.op, r.file, r.nth = k.op, k.file, nth
				cases = append(cases, faultCase{fmt.Sprintf("%s-%s-%s#%d", k.op, c.name, k.file, nth), r})
			}
		}
	}
	if crashes {
		for i := range ops {
			cases = append(cases, faultCase{fmt.Sprintf("crash-at-%d-%s", i+1, strings.ReplaceAll(ops[i], " ", "-")), faultRule{nth: i + 1, err: errCrash}})
		}
	}
	return cases
}

func TestFaults(t *testing.T) {
	for _, wr := range faultWriters() {
		t.Run(wr.name, func(t *testing.T) {
			setup := wr.setup
			if setup == nil {
				setup = newFaultWorld
			}
			// The clean run: every operation the writer makes.
			w := setup(t)
			clean := newFaultFS(faultRule{})
			s, err := wr.run(w, clean)
			if s != nil {
				s.Close()
			}
			if err != nil {
				t.Fatalf("clean run: %v", err)
			}
			ops := clean.log()
			checkFaultWorld(t, w)
			cases := faultCases(ops, true)
			t.Logf("%d operations, %d cases", len(ops), len(cases))
			tmpl := setup(t) // copied for each case: cheaper than the fsyncs of a setup
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					w := tmpl.clone(t)
					fsys := newFaultFS(c.rule)
					s, err := wr.run(w, fsys)
					if fsys.fired == "" {
						t.Fatalf("the fault did not fire (operations now: %d, in the clean run: %d)", len(fsys.log()), len(ops))
					}
					if err != nil {
						checkFaultError(t, w.dir, c.rule, err)
					}
					if s != nil {
						if c.rule.err != errCrash {
							// The same Store after the fault: it takes an append
							// durably or refuses it.
							b, ids := faultBatch("again", 2, "acct-4")
							w.appendBatch(s, b, ids)
						}
						s.Close()
					}
					checkFaultWorld(t, w)
				})
			}
		})
	}
}

// checkFaultError: an error names the failure in one line.
func checkFaultError(t *testing.T, dir string, r faultRule, err error) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if r.err == errCrash {
		return
	}
	if want := errnoText(r.err); !strings.Contains(msg, want) && !errors.Is(err, log.ErrFailed) {
		t.Errorf("error %q does not say %q", msg, want)
	}
	// (The temporary directory's name holds the test's, so drop it.)
	if strings.HasSuffix(r.file, ".seg") && r.op != "rename" && strings.Count(strings.ReplaceAll(msg, dir, "DIR"), r.file) > 1 {
		t.Errorf("error %q names the segment twice", msg)
	}
}

// checkFaultWorld opens the store as the next writer does and checks it.
func checkFaultWorld(t *testing.T, w *faultWorld) {
	t.Helper()
	// A reader first, as evt replay after a restart: it recovers (after a
	// reboot) before it reads. Then the next writer.
	if _, err := os.Stat(filepath.Join(w.dir, commitFile)); err == nil {
		r, err := Open(w.dir, Options{SegmentSize: faultSegmentSize})
		if err != nil {
			t.Fatalf("open to read: %v", err)
		}
		r.Close()
	}
	s, err := Open(w.dir, w.opts(nil))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.Verify(context.Background(), nil); err != nil {
		if !w.damaged {
			t.Fatalf("verify: %v", err)
		}
		if _, rerr := s.Repair(context.Background(), false, nil); rerr != nil {
			t.Fatalf("verify: %v; repair: %v", err, rerr)
		}
		if _, err := s.Verify(context.Background(), nil); err != nil {
			t.Fatalf("verify after repair: %v", err)
		}
	}
	seen := map[string]int{}
	if _, err := s.Scan(1, func(rec *codec.Record) error {
		if len(rec.ID) > 0 {
			seen[string(rec.ID)]++
		}
		return nil
	}); err != nil {
		t.Fatalf("scan: %v", err)
	}
	for id, stream := range w.acked {
		if n := seen[id]; n > 1 || n == 0 && !w.cut[stream] {
			t.Errorf("acknowledged event %s of %s is there %d times", id, stream, n)
		}
	}
	tried := map[string]bool{}
	for _, ids := range w.tried {
		present := 0
		for _, id := range ids {
			tried[id] = true
			if seen[id] > 1 {
				t.Errorf("event %s of a failed batch is there %d times", id, seen[id])
			}
			if seen[id] > 0 {
				present++
			}
		}
		if present != 0 && present != len(ids) && !w.cutAny() {
			t.Errorf("a failed batch of %d events is there in part (%d)", len(ids), present)
		}
	}
	var stray []string
	for id := range seen {
		if _, ok := w.acked[id]; !ok && !tried[id] {
			stray = append(stray, id)
		}
	}
	sort.Strings(stray)
	if len(stray) > 0 {
		t.Errorf("events nobody appended: %v", stray)
	}
	if _, err := s.Retention(); err != nil {
		t.Errorf("retention rules: %v", err)
	}
	groups, err := s.Groups(context.Background())
	if err != nil {
		t.Fatalf("groups: %v", err)
	}
	for _, name := range groups {
		g, err := s.openGroup(name)
		if err != nil {
			t.Fatalf("open group %s: %v", name, err)
		}
		if _, err := g.read(); err != nil {
			t.Errorf("group %s: %v", name, err)
		}
		g.Close()
	}
	if w.group != "" && !contains(groups, w.group) {
		// A group whose creation failed, or that was removed: its name
		// is free again.
		if err := s.CreateGroup(context.Background(), log.GroupConfig{Name: w.group, Selection: "acct-*", AckWait: time.Minute, Ordering: "stream"}, 1); err != nil {
			t.Errorf("group %s is not listed, but cannot be made again: %v", w.group, err)
		}
	}
	b, ids := faultBatch(fmt.Sprintf("check%d", len(w.acked)), 2, "acct-3", "check-1")
	if err := w.appendBatch(s, b, ids); err != nil {
		t.Fatalf("append after the fault: %v", err)
	}
}

// clone copies the world, its store directory included.
func (w *faultWorld) clone(t *testing.T) *faultWorld {
	t.Helper()
	c := *w
	c.dir = filepath.Join(t.TempDir(), "store")
	c.acked, c.cut = map[string]string{}, map[string]bool{}
	for k, v := range w.acked {
		c.acked[k] = v
	}
	for k, v := range w.cut {
		c.cut[k] = v
	}
	c.tried = append([][]string(nil), w.tried...)
	if _, err := os.Stat(w.dir); errors.Is(err, os.ErrNotExist) {
		return &c
	}
	err := filepath.WalkDir(w.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(w.dir, p)
		to := filepath.Join(c.dir, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func (w *faultWorld) cutAny() bool { return len(w.cut) > 0 }

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestSyncBeforePublish checks the order the power-loss model of
// cmd/torture relies on, in the operations an append makes: the segment
// is synced after its last write and before the commit file publishes
// the new end (evt append prints the results after Append returns, so
// after the publish). With --sync none there is no sync, and the publish
// still comes after the last segment write.
func TestSyncBeforePublish(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncNone} {
		t.Run(policy.String(), func(t *testing.T) {
			w := newFaultWorld(t)
			fsys := newFaultFS(faultRule{})
			opts := w.opts(fsys)
			opts.Sync = policy
			s, err := Open(w.dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			start := len(fsys.log())
			b, ids := faultBatch("order", 3, "acct-1", "acct-2")
			if err := w.appendBatch(s, b, ids); err != nil {
				t.Fatal(err)
			}
			ops := fsys.log()[start:]
			lastWrite, sync, publish := -1, -1, -1
			for i, o := range ops {
				op, file, _ := strings.Cut(o, " ")
				switch {
				case strings.HasSuffix(file, ".seg") && op == "write":
					lastWrite = i
				case strings.HasSuffix(file, ".seg") && op == "sync":
					sync = i
				case file == commitFile && op == "write":
					publish = i
				}
			}
			ok := lastWrite >= 0 && publish > lastWrite
			if policy == SyncAlways {
				ok = ok && sync > lastWrite && publish > sync
			} else {
				ok = ok && sync < 0
			}
			if !ok {
				t.Fatalf("want the segment writes, then (with --sync always) its sync, then the commit publish; got:\n%s", strings.Join(ops, "\n"))
			}
		})
	}
}

// TestPowerLoss cuts the power at every operation of every writer: the
// writer stops there (a crash), and the files are left as the last
// successful sync of each saw them (faultFS.powerCut). The store must
// open as after a reboot and pass the same checks as after a fault; an
// event acknowledged before the cut (with --sync always) survives it.
func TestPowerLoss(t *testing.T) {
	for _, wr := range faultWriters() {
		t.Run(wr.name, func(t *testing.T) {
			setup := wr.setup
			if setup == nil {
				setup = newFaultWorld
			}
			w := setup(t)
			clean := newFaultFS(faultRule{})
			s, err := wr.run(w, clean)
			if s != nil {
				s.Close()
			}
			if err != nil {
				t.Fatalf("clean run: %v", err)
			}
			n := len(clean.log())
			tmpl := setup(t)
			for i := 1; i <= n+1; i++ {
				t.Run(fmt.Sprintf("cut-at-%d", i), func(t *testing.T) {
					t.Parallel()
					w := tmpl.clone(t)
					fsys := newFaultFS(faultRule{nth: i, err: errCrash})
					if i > n {
						fsys = newFaultFS(faultRule{}) // after the writer returned
					}
					s, _ := wr.run(w, fsys)
					if s != nil {
						s.Close()
					}
					fsys.powerCut()
					rebootStore(t, w.dir)
					checkFaultWorld(t, w)
				})
			}
		})
	}
}

// rebootStore changes the boot id the commit file records, as a restart
// of the machine does, so the next open runs the recovery after a reboot.
func rebootStore(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, commitFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return // no commit file: the store was never made
	}
	for _, off := range []int{0, commitSlotGap} {
		if off+commitSlotSize > len(b) {
			continue
		}
		c, ok := decodeCommit(b[off:])
		if !ok {
			continue
		}
		c.boot[0] ^= 0xff
		copy(b[off:], c.encode())
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// sparseFaultWorld is newFaultWorld with a sealed segment compacted into
// the sparse offsets form (one stream of it deleted), whose other stream
// is then truncated, so that the next compaction rewrites it again.
func sparseFaultWorld(t *testing.T) *faultWorld {
	t.Helper()
	w := newFaultWorld(t)
	s, err := Open(w.dir, w.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, ids := faultBatch("sparse", 60, "sparse-gone", "sparse-gone", "sparse-gone", "sparse-trunc")
	if err := w.appendBatch(s, b, ids); err != nil {
		t.Fatal(err)
	}
	b, ids = faultBatch("seal", 2, "acct-3")
	if err := w.appendBatch(s, b, ids); err != nil {
		t.Fatal(err)
	}
	w.cut["sparse-gone"], w.cut["sparse-trunc"] = true, true
	if _, err := s.Delete(context.Background(), "sparse-gone", log.Expectation{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(w.dir, "*.sidx"))
	sparse := 0
	for _, name := range names {
		if b, err := os.ReadFile(name); err == nil && isSparse(b) {
			sparse++
		}
	}
	if sparse == 0 {
		t.Fatalf("no sparse offsets file after compaction (%v): the test needs one", names)
	}
	if _, err := s.Truncate(context.Background(), "sparse-trunc", 10, log.Expectation{}); err != nil {
		t.Fatal(err)
	}
	return w
}
