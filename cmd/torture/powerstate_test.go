package torture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
	"github.com/evtdev/evt/log/local/vfs"
)

// Power loss during writes of group state and retention rules (issue 19:
// images at every write boundary, not only of appends). TestPowerLoss
// snapshots the store after each append; these writes go through a few
// files and directories each (a temporary, its fsync, a rename, the
// directory's fsync), so here the store runs on diskFS, which passes
// every operation to the real directory and keeps a model of what a
// disk would hold after a power cut at that instant. After every
// operation (a write boundary) the model is kept, and images built from
// it:
//
//   - a file holds, page by page, any version written since its last
//     fsync (or fdatasync), with the length of one of them; a file
//     created since holds nothing more durable than empty;
//   - a directory holds its entries as of its last fsync, then any
//     prefix of the creations, renames and removals made in it since (a
//     journal replays in order; a rename within a directory is one
//     step); a rename between directories is a step in each;
//   - everything the store held before the operation is durable.
//
// The first image at each boundary is the worst: only what was synced.
//
// Each image is opened as after a reboot and must hold the state from
// before the operation or from after it, never a mix, and the one from
// after once the operation returned; evt verify passes; and the store
// goes on (a group present can be leased from, one absent created again,
// the rules changed again).

// diskObj is a file or a directory of diskFS's model.
type diskObj struct {
	dir bool
	// A file: versions[0] is what its last sync made durable, the rest
	// what was written since, in order. Never changed in place: a
	// snapshot of the model shares them.
	versions [][]byte
	// A directory: its entries as of its last fsync, and the changes
	// since.
	durable map[string]*diskObj
	pending []dirStep
}

// dirStep is one change to a directory's entries that a power cut keeps
// whole or not at all: obj nil removes name; a rename within the
// directory is two changes in one step.
type dirStep []dirChange

type dirChange struct {
	name string
	obj  *diskObj
}

// current is the directory's entries now.
func (d *diskObj) current() map[string]*diskObj {
	m := make(map[string]*diskObj, len(d.durable))
	for k, v := range d.durable {
		m[k] = v
	}
	for _, st := range d.pending {
		for _, c := range st {
			if c.obj == nil {
				delete(m, c.name)
			} else {
				m[c.name] = c.obj
			}
		}
	}
	return m
}

// diskFS is vfs.OS with a model of the disk under root beside it (see
// above). It is not safe for use by two goroutines at once; the store
// under test is used by one.
type diskFS struct {
	root  string
	top   *diskObj
	snaps []*diskObj // the model after each operation, from Start on
	ops   []string   // the operation before each snapshot, for messages
	rec   bool
}

func newDiskFS(t *testing.T, root string) *diskFS {
	t.Helper()
	top := &diskObj{dir: true}
	if err := refresh(top, root); err != nil {
		t.Fatal(err)
	}
	return &diskFS{root: root, top: top}
}

// Start takes everything written so far as durable and records the model
// after each operation from now on; the first record is this instant.
// The model is refreshed from the real directory (the mapped tables are
// written without the seam), keeping the objects of files the store has
// open.
func (d *diskFS) Start(t *testing.T) {
	t.Helper()
	if err := refresh(d.top, d.root); err != nil {
		t.Fatal(err)
	}
	d.rec, d.snaps, d.ops = true, nil, nil
	d.boundary("start")
}

// refresh makes o (a directory) what path holds now, all of it durable.
func refresh(o *diskObj, path string) error {
	ents, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	old := o.current()
	o.durable, o.pending = map[string]*diskObj{}, nil
	for _, e := range ents {
		p := filepath.Join(path, e.Name())
		c := old[e.Name()]
		if c == nil || c.dir != e.IsDir() {
			c = &diskObj{dir: e.IsDir()}
		}
		if e.IsDir() {
			if err := refresh(c, p); err != nil {
				return err
			}
		} else {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			c.versions = [][]byte{b}
		}
		o.durable[e.Name()] = c
	}
	return nil
}

// Stop ends the recording and returns the models, one per boundary.
func (d *diskFS) Stop() []*diskObj {
	d.boundary("returned")
	d.rec = false
	return d.snaps
}

func (d *diskFS) boundary(op string, args ...any) {
	if d.rec {
		d.snaps = append(d.snaps, cloneObj(d.top, map[*diskObj]*diskObj{}))
		d.ops = append(d.ops, fmt.Sprintf(op, args...))
	}
}

// rel is path relative to the store, for messages.
func (d *diskFS) rel(path string) string {
	if r, err := filepath.Rel(d.root, path); err == nil {
		return r
	}
	return path
}

func cloneObj(o *diskObj, seen map[*diskObj]*diskObj) *diskObj {
	if o == nil {
		return nil
	}
	if c, ok := seen[o]; ok {
		return c
	}
	c := &diskObj{dir: o.dir, versions: append([][]byte(nil), o.versions...)}
	seen[o] = c
	if o.dir {
		c.durable = make(map[string]*diskObj, len(o.durable))
		for k, v := range o.durable {
			c.durable[k] = cloneObj(v, seen)
		}
		for _, st := range o.pending {
			var cs dirStep
			for _, ch := range st {
				cs = append(cs, dirChange{ch.name, cloneObj(ch.obj, seen)})
			}
			c.pending = append(c.pending, cs)
		}
	}
	return c
}

// lookup finds the model's directory holding path and the name in it;
// dir is nil outside root or under a directory the model lacks.
func (d *diskFS) lookup(path string) (dir *diskObj, name string) {
	rel, err := filepath.Rel(d.root, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil, ""
	}
	parts := strings.Split(rel, string(filepath.Separator))
	cur := d.top
	for _, p := range parts[:len(parts)-1] {
		next := cur.current()[p]
		if next == nil || !next.dir {
			return nil, ""
		}
		cur = next
	}
	return cur, parts[len(parts)-1]
}

func (d *diskFS) obj(path string) *diskObj {
	if filepath.Clean(path) == filepath.Clean(d.root) {
		return d.top
	}
	dir, name := d.lookup(path)
	if dir == nil {
		return nil
	}
	return dir.current()[name]
}

func (d *diskFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := vfs.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	o := d.obj(name)
	if o == nil && flag&os.O_CREATE != 0 {
		if dir, base := d.lookup(name); dir != nil {
			o = &diskObj{versions: [][]byte{nil}}
			dir.pending = append(dir.pending, dirStep{{base, o}})
		}
	}
	if o != nil && !o.dir && flag&os.O_TRUNC != 0 {
		o.versions = append(o.versions, nil)
	}
	if flag&(os.O_CREATE|os.O_TRUNC) != 0 {
		d.boundary("open %s (flags %#x)", d.rel(name), flag)
	}
	return &diskFile{File: f, fs: d, obj: o}, nil
}

func (d *diskFS) Rename(oldpath, newpath string) error {
	if err := vfs.OS.Rename(oldpath, newpath); err != nil {
		return err
	}
	od, on := d.lookup(oldpath)
	nd, nn := d.lookup(newpath)
	if od != nil && nd != nil {
		o := od.current()[on]
		if od == nd {
			od.pending = append(od.pending, dirStep{{on, nil}, {nn, o}})
		} else {
			od.pending = append(od.pending, dirStep{{on, nil}})
			nd.pending = append(nd.pending, dirStep{{nn, o}})
		}
	}
	d.boundary("rename %s %s", d.rel(oldpath), d.rel(newpath))
	return nil
}

func (d *diskFS) Remove(name string) error {
	if err := vfs.OS.Remove(name); err != nil {
		return err
	}
	if dir, base := d.lookup(name); dir != nil {
		dir.pending = append(dir.pending, dirStep{{base, nil}})
	}
	d.boundary("remove %s", d.rel(name))
	return nil
}

func (d *diskFS) Mkdir(name string, perm fs.FileMode) error {
	if err := vfs.OS.Mkdir(name, perm); err != nil {
		return err
	}
	if dir, base := d.lookup(name); dir != nil {
		dir.pending = append(dir.pending, dirStep{{base, &diskObj{dir: true, durable: map[string]*diskObj{}}}})
	}
	d.boundary("mkdir %s", d.rel(name))
	return nil
}

func (d *diskFS) ReadDir(name string) ([]fs.DirEntry, error) { return vfs.OS.ReadDir(name) }
func (d *diskFS) Stat(name string) (fs.FileInfo, error)      { return vfs.OS.Stat(name) }

func (d *diskFS) SyncDir(name string) error {
	if err := vfs.OS.SyncDir(name); err != nil {
		return err
	}
	d.syncDir(d.obj(name), name)
	return nil
}

func (d *diskFS) syncDir(o *diskObj, name string) {
	if o == nil || !o.dir {
		return
	}
	o.durable, o.pending = o.current(), nil
	d.boundary("fsync directory %s", d.rel(name))
}

// diskFile is a file of diskFS: each write refreshes its model's latest
// version from the real file.
type diskFile struct {
	vfs.File
	fs  *diskFS
	obj *diskObj // nil outside the model
}

func (f *diskFile) wrote() {
	if f.obj == nil || f.obj.dir {
		return
	}
	// Through /proc: the file may be open for writing only.
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", f.File.Fd()))
	if err != nil {
		panic(fmt.Sprintf("diskFS: reading back %s: %v", f.Name(), err))
	}
	f.obj.versions = append(f.obj.versions, b)
	f.fs.boundary("write %s (%d bytes now)", f.fs.rel(f.Name()), len(b))
}

func (f *diskFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.wrote()
	return n, err
}

func (f *diskFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.wrote()
	return n, err
}

func (f *diskFile) Truncate(size int64) error {
	err := f.File.Truncate(size)
	f.wrote()
	return err
}

func (f *diskFile) Sync() error {
	err := f.File.Sync()
	if err == nil {
		f.synced()
	}
	return err
}

func (f *diskFile) Datasync() error {
	err := f.File.Datasync()
	if err == nil {
		f.synced()
	}
	return err
}

func (f *diskFile) synced() {
	if f.obj == nil {
		return
	}
	if f.obj.dir {
		f.fs.syncDir(f.obj, f.Name())
		return
	}
	f.obj.versions = f.obj.versions[len(f.obj.versions)-1:]
	f.fs.boundary("fsync %s", f.fs.rel(f.Name()))
}

// writeImage writes into path what the disk may hold by the model m; if
// worst, the least of it: only what was synced.
func writeImage(rng *rand.Rand, m *diskObj, path string, worst bool) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	ents := map[string]*diskObj{}
	for k, v := range m.durable {
		ents[k] = v
	}
	applied := rng.Intn(len(m.pending) + 1)
	if worst {
		applied = 0
	}
	for _, st := range m.pending[:applied] {
		for _, c := range st {
			if c.obj == nil {
				delete(ents, c.name)
			} else {
				ents[c.name] = c.obj
			}
		}
	}
	for name, o := range ents {
		p := filepath.Join(path, name)
		if o.dir {
			if err := writeImage(rng, o, p, worst); err != nil {
				return err
			}
			continue
		}
		pick := func() []byte {
			if worst {
				return o.versions[0]
			}
			return o.versions[rng.Intn(len(o.versions))]
		}
		size := len(pick())
		content := make([]byte, size)
		for off := 0; off < size; off += 4096 {
			v := pick()
			end := min(off+4096, size)
			if off < len(v) {
				copy(content[off:end], v[off:min(end, len(v))])
			}
		}
		if name == "commit" {
			rebootCommit(content)
		}
		if err := os.WriteFile(p, content, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// stateCase is one write of group state or retention rules: setup runs
// first (not recorded), then op, recorded; state is what must be before
// or after, as a string.
type stateCase struct {
	name  string
	setup func(t *testing.T, s *local.Store) any
	op    func(t *testing.T, s *local.Store, v any) error
	// then shows the image goes on: a further write that must work.
	then func(t *testing.T, s *local.Store) error
}

// groupState is group g's state as JSON, or "absent".
func groupState(s *local.Store, name string) (string, error) {
	st, err := s.GroupState(name)
	if errors.Is(err, log.ErrNotFound) {
		return "absent", nil
	}
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(st)
	return string(b), err
}

func retentionState(s *local.Store) (string, error) {
	r, err := s.Retention()
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(r)
	return string(b), err
}

// stateOf is what a case compares: both groups and the rules.
func stateOf(s *local.Store) (string, error) {
	var parts []string
	for _, g := range []string{"g", "h"} {
		st, err := groupState(s, g)
		if err != nil {
			return "", fmt.Errorf("group %s: %w", g, err)
		}
		parts = append(parts, g+"="+st)
	}
	r, err := retentionState(s)
	if err != nil {
		return "", fmt.Errorf("retention: %w", err)
	}
	return strings.Join(append(parts, "rules="+r), "\n"), nil
}

func leaseSome(t *testing.T, s *local.Store, n int) (log.Member, []log.Delivery) {
	t.Helper()
	ctx := context.Background()
	g, err := s.OpenGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	m, err := g.Join(ctx, log.MemberOptions{Poll: true})
	if err != nil {
		t.Fatal(err)
	}
	ds, _, err := m.Lease(ctx, n, true)
	if err != nil || len(ds) != n {
		t.Fatalf("lease %d: %d, %v", n, len(ds), err)
	}
	return m, ds
}

func positionsOf(ds []log.Delivery) []uint64 {
	var ps []uint64
	for _, d := range ds {
		ps = append(ps, d.Event.Position)
	}
	return ps
}

// untilAcked adds an until-acked rule: then a group's creation or removal
// also records the marks in groups/.expired.
func untilAcked(t *testing.T, s *local.Store) any {
	if err := s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = append(r.Rules, log.Rule{Selection: "p-*", UntilAcked: true})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return nil
}

var stateCases = []stateCase{
	{
		name: "group create",
		op: func(t *testing.T, s *local.Store, _ any) error {
			return s.CreateGroup(context.Background(), log.GroupConfig{Name: "h", Selection: "p-*", AckWait: time.Minute, MaxDeliver: 5, Ordering: "stream"}, 3)
		},
	},
	{
		name: "group lease",
		setup: func(t *testing.T, s *local.Store) any {
			m, _ := leaseSome(t, s, 2)
			return m
		},
		op: func(t *testing.T, s *local.Store, v any) error {
			_, _, err := v.(log.Member).Lease(context.Background(), 3, true)
			return err
		},
	},
	{
		name: "group ack",
		setup: func(t *testing.T, s *local.Store) any {
			m, ds := leaseSome(t, s, 4)
			return func() error { return m.Ack(context.Background(), positionsOf(ds)...) }
		},
		op: func(t *testing.T, s *local.Store, v any) error { return v.(func() error)() },
	},
	{
		name: "group ack with the next lease",
		setup: func(t *testing.T, s *local.Store) any {
			m, ds := leaseSome(t, s, 4)
			return func() error {
				_, _, err := m.Lease(context.Background(), 2, true, positionsOf(ds)...)
				return err
			}
		},
		op: func(t *testing.T, s *local.Store, v any) error { return v.(func() error)() },
	},
	{
		name: "group nack",
		setup: func(t *testing.T, s *local.Store) any {
			m, ds := leaseSome(t, s, 1)
			return func() error { return m.Nack(context.Background(), ds[0].Event.Position, "handler failed") }
		},
		op: func(t *testing.T, s *local.Store, v any) error { return v.(func() error)() },
	},
	{
		name: "group reset",
		op: func(t *testing.T, s *local.Store, _ any) error {
			g, err := s.OpenGroup(context.Background(), "g")
			if err != nil {
				return err
			}
			defer g.Close()
			_, err = g.Reset(context.Background(), 20, false)
			return err
		},
	},
	{
		name: "group rm",
		op: func(t *testing.T, s *local.Store, _ any) error {
			return s.RemoveGroup(context.Background(), "g")
		},
	},
	{
		name: "group retry",
		setup: func(t *testing.T, s *local.Store) any {
			ctx := context.Background()
			if err := s.CreateGroup(ctx, log.GroupConfig{Name: "h", Selection: "p-1", AckWait: time.Minute, MaxDeliver: 1, Ordering: "stream"}, 1); err != nil {
				t.Fatal(err)
			}
			g, err := s.OpenGroup(ctx, "h")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close() })
			m, err := g.Join(ctx, log.MemberOptions{Poll: true})
			if err != nil {
				t.Fatal(err)
			}
			ds, _, err := m.Lease(ctx, 1, true)
			if err == nil && len(ds) == 1 {
				err = m.Nack(ctx, ds[0].Event.Position, "handler failed") // parked: max-deliver 1
			}
			if err == nil {
				_, _, err = m.Lease(ctx, 0, true) // parks it
			}
			if err != nil {
				t.Fatal(err)
			}
			m.Close()
			return g
		},
		op: func(t *testing.T, s *local.Store, v any) error {
			n, err := v.(log.Group).Retry(context.Background())
			if err == nil && n != 1 {
				err = fmt.Errorf("retried %d parked events, want 1", n)
			}
			return err
		},
	},
	{
		name:  "group create under an until-acked rule",
		setup: untilAcked,
		op: func(t *testing.T, s *local.Store, _ any) error {
			return s.CreateGroup(context.Background(), log.GroupConfig{Name: "h", Selection: "p-*", AckWait: time.Minute, MaxDeliver: 5, Ordering: "stream"}, 1)
		},
	},
	{
		name:  "group rm under an until-acked rule",
		setup: untilAcked,
		op: func(t *testing.T, s *local.Store, _ any) error {
			return s.RemoveGroup(context.Background(), "g")
		},
	},
	{
		name: "retention set",
		op: func(t *testing.T, s *local.Store, _ any) error {
			return s.UpdateRetention(func(r *log.Retention) error {
				r.Rules = append(r.Rules, log.Rule{Selection: "q-*", MaxCount: 3})
				return nil
			})
		},
	},
	{
		name: "retention change",
		op: func(t *testing.T, s *local.Store, _ any) error {
			return s.UpdateRetention(func(r *log.Retention) error {
				r.Rules[0].MaxCount = 7
				r.Rules[0].MaxAge = time.Hour
				return nil
			})
		},
	},
	{
		name: "retention rm",
		op: func(t *testing.T, s *local.Store, _ any) error {
			return s.UpdateRetention(func(r *log.Retention) error {
				r.Rules = nil
				return nil
			})
		},
	},
}

// TestPowerLossState cuts the power at every write boundary of each
// stateCase (see the top of this file).
func TestPowerLossState(t *testing.T) {
	variants := scale(1, 6) // the first is the worst image
	seed := time.Now().UnixNano()
	t.Logf("seed %d, %d images per boundary", seed, variants)
	for _, tc := range stateCases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			dir := filepath.Join(t.TempDir(), "store")
			// The store: events in p-* streams, group g over them from 1,
			// a rule on r-*.
			for i := range 5 {
				var in bytes.Buffer
				for j := range 10 {
					fmt.Fprintf(&in, `{"stream":"p-%d","type":"T","data":{"i":%d,"j":%d}}`+"\n", j%3, i, j)
				}
				mustEvt(t, in.String(), "--dir", dir, "append")
			}
			mustEvt(t, "", "--dir", dir, "group", "create", "g", "p-*", "--from", "start")
			mustEvt(t, "", "--dir", dir, "retention", "set", "r-*", "--max-count", "5")

			dfs := newDiskFS(t, dir)
			s, err := local.Open(dir, local.Options{Create: true, FS: dfs})
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if tc.setup != nil {
				v = tc.setup(t, s)
			}
			before, err := stateOf(s)
			if err != nil {
				t.Fatal(err)
			}
			dfs.Start(t)
			if err := tc.op(t, s, v); err != nil {
				t.Fatal(err)
			}
			models := dfs.Stop()
			after, err := stateOf(s)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if after == before {
				t.Fatalf("the operation changed nothing: %s", after)
			}
			seenBefore, seenAfter := 0, 0
			for k, m := range models {
				returned := k == len(models)-1
				for i := range variants {
					img := filepath.Join(t.TempDir(), "image")
					if err := writeImage(rng, m, img, i == 0); err != nil {
						t.Fatal(err)
					}
					got := checkStateImage(t, img, fmt.Sprintf("boundary %d of %d", k, len(models)-1))
					switch {
					case got == after:
						seenAfter++
					case got == before && !returned:
						seenBefore++
					case got == before:
						t.Fatalf("boundary %d (the operation had returned): the image holds the state from before it:\n%s\nwant\n%s\noperations: %s", k, got, after, strings.Join(dfs.ops, "; "))
					default:
						t.Fatalf("boundary %d of %d (after %s): the image holds\n%s\nwant the state before\n%s\nor after\n%s", k, len(models)-1, dfs.ops[k], got, before, after)
					}
					tally.images.Add(1)
					os.RemoveAll(img)
				}
			}
			if testing.Verbose() {
				t.Logf("operations: %s", strings.Join(dfs.ops, "; "))
			}
			t.Logf("%d boundaries: %d images held the state from before, %d from after", len(models), seenBefore, seenAfter)
		})
	}
}

// checkStateImage opens an image as after a reboot, checks it verifies
// and goes on, and returns its state.
func checkStateImage(t *testing.T, img, what string) string {
	t.Helper()
	keep := keepImage(t, img, what)
	defer keep.Stop()
	s, err := local.Open(img, local.Options{Create: true})
	if err != nil {
		t.Fatalf("%s: open: %v", what, err)
	}
	defer s.Close()
	got, err := stateOf(s)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r := evt(t, "", "--dir", img, "verify"); r.code != 0 {
		t.Fatalf("%s: evt verify: exit %d: %s%s", what, r.code, r.out, r.errOut)
	}
	// It goes on: both groups lease (or are made again), the rules change.
	ctx := context.Background()
	for _, name := range []string{"g", "h"} {
		g, err := s.OpenGroup(ctx, name)
		if errors.Is(err, log.ErrNotFound) {
			if err := s.CreateGroup(ctx, log.GroupConfig{Name: name, Selection: "p-*", AckWait: time.Minute, MaxDeliver: 5, Ordering: "stream"}, 1); err != nil {
				t.Fatalf("%s: group %s absent, and creating it: %v", what, name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: open group %s: %v", what, name, err)
		}
		m, err := g.Join(ctx, log.MemberOptions{Poll: true})
		if err == nil {
			_, _, err = m.Lease(ctx, 1, true)
			m.Close()
		}
		g.Close()
		if err != nil {
			t.Fatalf("%s: group %s: %v", what, name, err)
		}
	}
	if err := s.UpdateRetention(func(r *log.Retention) error {
		r.Rules = append(r.Rules, log.Rule{Selection: "z-*", MaxCount: 1})
		return nil
	}); err != nil {
		t.Fatalf("%s: retention: %v", what, err)
	}
	return got
}
