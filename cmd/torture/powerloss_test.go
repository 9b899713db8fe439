package torture_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

// The power-loss test. A run of appends with --sync always is recorded as
// a copy of the store's files after each append returned (snapshot k is
// the store once batch k was acknowledged; snapshot 0 the new store).
// From them it builds images of the disk as a power cut during append k
// may leave it, and checks each image like a machine that restarted:
// recovery runs, nothing acknowledged (batches 1…k-1) is missing, batch k
// is whole or absent, nothing else is read, evt verify passes, and new
// appends with --expect see every stream at its true version.
//
// The model of the disk (honest about what was synced, pessimistic about
// the rest):
//
//   - A segment's content is durable up to where it was when the previous
//     append returned: with --sync always evt fdatasyncs the segment before
//     it acknowledges, and TestSyncBeforePublish in log/local checks that
//     order in the operations an append makes. A segment the append created (a roll) is
//     durable up to its header, which evt fsyncs with the directory before
//     using it.
//   - Data written after that is not synced. In phase A (the cut comes
//     before the append's fdatasync finished) the segment keeps a random
//     prefix of it, followed half the time by up to 300 bytes of garbage
//     (in a segment the append wrote to),
//     and the commit file and the heads table keep versions from before
//     the append (evt writes them only after the sync). In phase B (the
//     sync finished, the publish may or may not have reached the disk) the
//     segment is whole and every other file may hold anything up to
//     snapshot k.
//   - Every other file (commit, heads, ids, offsets) is never synced on
//     the append path, so each page of it (512-byte sectors for the commit
//     file, whose two slots are in different sectors) independently holds
//     its content from any snapshot since its last sync, and its length is
//     that of one of them; a file created since then may be missing. The
//     tables and the sealed segment's offsets are synced when a segment is
//     sealed, so for them "since" starts at the snapshot before the last
//     roll; the commit file is never synced, so any version since the
//     store was made. Pages are only mixed between versions of one inode
//     (the tables grow by rename).
//   - The restart is modelled by changing the kernel boot id recorded in
//     the commit file's valid slots, as a real reboot changes the kernel's.
//
// What the model does not produce: pages older than snapshot 0, and
// files evt syncs outside the append path (a roll: the sealed segment,
// its offsets, the tables, the directory) are taken as synced as the code
// says rather than observed.

// fileVersion is one file of a snapshot.
type fileVersion struct {
	data []byte
	ino  uint64
}

type snapshot map[string]fileVersion

func takeSnapshot(t *testing.T, dir string) snapshot {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		s[e.Name()] = fileVersion{b, fi.Sys().(*syscall.Stat_t).Ino}
	}
	return s
}

// plBatch is one appended batch and what evt acknowledged for it.
type plBatch struct {
	keys    []string // stream\x00id
	results []log.Result
}

// powerRun is a recorded run.
type powerRun struct {
	snaps   []snapshot
	batches []plBatch // batches[k-1] is batch k
}

// recordRun appends n batches with SyncAlways, in process, and keeps a
// snapshot after each.
func recordRun(t *testing.T, rng *rand.Rand, dir string, n int) *powerRun {
	s, err := local.Open(dir, local.Options{Create: true, Sync: local.SyncAlways, SegmentSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run := &powerRun{snaps: []snapshot{takeSnapshot(t, dir)}}
	for k := 1; k <= n; k++ {
		var b log.Batch
		size := 1 + rng.Intn(12)
		if rng.Intn(10) == 0 {
			size = 100 + rng.Intn(100)
		}
		var pb plBatch
		for i := range size {
			stream := fmt.Sprintf("p-%d", rng.Intn(10))
			if rng.Intn(20) == 0 {
				stream = fmt.Sprintf("new-%d", k) // new streams make the tables grow
			}
			id := fmt.Sprintf("k%d-%d", k, i)
			data := fmt.Sprintf(`{"k":%d,"i":%d,"pad":"%s"}`, k, i, strings.Repeat("y", rng.Intn(150)))
			if err := b.Add(stream, "Written", id, []byte(data), nil); err != nil {
				t.Fatal(err)
			}
			pb.keys = append(pb.keys, stream+"\x00"+id)
		}
		res, err := s.Append(context.Background(), &b)
		if err != nil {
			t.Fatal(err)
		}
		pb.results = res
		run.batches = append(run.batches, pb)
		run.snaps = append(run.snaps, takeSnapshot(t, dir))
	}
	return run
}

func isSegment(name string) bool { return strings.HasSuffix(name, ".seg") }

// isIDRun reports whether name is an id run (log/local/idindex.go).
func isIDRun(name string) bool { return len(name) == 24 && strings.HasSuffix(name, ".ids") }

// lastRoll is the index of the snapshot before the last roll at or
// before append k: from there on the tables were synced.
func (r *powerRun) lastRoll(k int) int {
	lo := 0
	for j := 1; j <= k; j++ {
		for name := range r.snaps[j] {
			if _, ok := r.snaps[j-1][name]; isSegment(name) && !ok {
				lo = j - 1
			}
		}
	}
	return lo
}

// image writes into dir what the disk may hold after a power cut during
// append k, in phase B (after its fdatasync) or A (before).
func (r *powerRun) image(rng *rand.Rand, dir string, k int, phaseB bool) error {
	prev, cur := r.snaps[k-1], r.snaps[k]
	names := map[string]bool{}
	for n := range prev {
		names[n] = true
	}
	for n := range cur {
		names[n] = true
	}
	lo := r.lastRoll(k)
	for name := range names {
		var content []byte
		if isIDRun(name) {
			// An id run is written whole, fdatasynced, renamed into place
			// and its directory synced before anything relies on it (the
			// id table forgets its ids only after), and never changed in
			// place: what the last snapshot holds is on the disk.
			c, ok := cur[name]
			if !ok {
				continue
			}
			content = c.data
		} else if isSegment(name) {
			p, inPrev := prev[name]
			c, inCur := cur[name]
			var durable, tail []byte
			switch {
			case inPrev && (!inCur || c.ino != p.ino):
				durable = p.data // removed or replaced: the old one survives
			case inPrev:
				durable = p.data
				if bytes.HasPrefix(c.data, p.data) {
					tail = c.data[len(p.data):]
				}
			default:
				h := min(64, len(c.data))
				durable, tail = c.data[:h], c.data[h:]
			}
			content = append([]byte(nil), durable...)
			if phaseB {
				content = append(content, tail...)
			} else {
				content = append(content, tail[:rng.Intn(len(tail)+1)]...)
				// Junk only where the append wrote: a torn write leaves
				// sectors of any content; an unwritten file none.
				if len(tail) > 0 && rng.Intn(2) == 0 {
					junk := make([]byte, rng.Intn(300))
					rng.Read(junk)
					content = append(content, junk...)
				}
			}
		} else {
			from, to, page := lo, k, 4096
			if name == "commit" {
				from, page = 0, 512
			}
			if !phaseB && (name == "commit" || name == "heads") {
				to = k - 1
			}
			var cands []*fileVersion // nil: the file did not exist
			for j := from; j <= to; j++ {
				if v, ok := r.snaps[j][name]; ok {
					cands = append(cands, &v)
				} else {
					cands = append(cands, nil)
				}
			}
			size := cands[rng.Intn(len(cands))]
			if size == nil {
				continue // missing
			}
			var same []*fileVersion
			for _, v := range cands {
				if v != nil && v.ino == size.ino {
					same = append(same, v)
				}
			}
			content = make([]byte, len(size.data))
			for off := 0; off < len(content); off += page {
				v := same[rng.Intn(len(same))]
				end := min(off+page, len(content))
				if off < len(v.data) {
					copy(content[off:end], v.data[off:min(end, len(v.data))])
				}
			}
			if name == "commit" {
				rebootCommit(content)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// rebootCommit gives each valid slot of a commit file another boot id
// (bytes 48–64, CRC32C of [0,124) at 124; see log/commit.go), as a
// restarted kernel has.
func rebootCommit(b []byte) {
	for _, off := range []int{0, 512} {
		if len(b) < off+128 {
			continue
		}
		slot := b[off : off+128]
		if binary.LittleEndian.Uint32(slot[124:]) != codec.Checksum(slot[:124]) {
			continue
		}
		for i := 48; i < 64; i++ {
			slot[i] = 0xee
		}
		binary.LittleEndian.PutUint32(slot[124:], codec.Checksum(slot[:124]))
	}
}

// checkImage restarts on an image of a cut during append k and checks it.
// It reports whether batch k survived.
func (r *powerRun) checkImage(t *testing.T, rng *rand.Rand, dir string, k int) bool {
	t.Helper()
	writerFirst := rng.Intn(2) == 0
	if writerFirst {
		// The first process after the restart is a writer: it recovers.
		mustEvt(t, "", "--dir", dir, "append", "after-1", "Restarted", "{}")
	}
	evs := replayAll(t, dir)
	if writerFirst {
		last := evs[len(evs)-1]
		if last.Stream != "after-1" || last.Version != 1 {
			t.Fatalf("image of append %d: the append after the restart is %s@%d at %d", k, last.Stream, last.Version, last.Position)
		}
		evs = evs[:len(evs)-1]
	}
	acks := map[string]acked{}
	for _, b := range r.batches[:k-1] {
		for i, res := range b.results {
			id := strings.SplitN(b.keys[i], "\x00", 2)[1]
			acks[b.keys[i]] = acked{id: id, stream: res.Stream, position: res.Position, version: res.Version}
		}
	}
	checkAcked(t, evs, acks)
	inK := 0
	known := map[string]bool{}
	for _, key := range r.batches[k-1].keys {
		known[key] = true
	}
	for _, e := range evs {
		key := e.Stream + "\x00" + e.ID
		if known[key] {
			inK++
		} else if _, ok := acks[key]; !ok {
			t.Fatalf("image of append %d: event %s of %s at %d was never appended", k, e.ID, e.Stream, e.Position)
		}
	}
	if inK != 0 && inK != len(known) {
		t.Fatalf("image of append %d: %d of the batch's %d events were read: a half-written batch", k, inK, len(known))
	}
	verify(t, dir)

	// Every stream must be at its true version: one batch that expects
	// each stream's version and appends to a few of them.
	versions := map[string]uint64{}
	for _, e := range evs {
		versions[e.Stream] = e.Version
	}
	s, err := local.Open(dir, local.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	var b log.Batch
	for stream, v := range versions {
		b.Expect(stream, log.Expectation{Kind: log.ExpectVersion, Version: v})
		if rng.Intn(3) == 0 {
			if err := b.Add(stream, "AfterRestart", "", []byte(`{}`), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Add("after-2", "AfterRestart", "", []byte(`{}`), nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(context.Background(), &b)
	s.Close()
	if err != nil {
		t.Fatalf("image of append %d: append with every stream's version expected: %v", k, err)
	}
	verify(t, dir)
	tally.images.Add(1)
	return inK > 0
}

func TestPowerLoss(t *testing.T) {
	appends, variants := scale(30, 200), scale(1, 4)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d: %d appends, %d images per phase of each", seed, appends, variants)
	run := recordRun(t, rng, filepath.Join(t.TempDir(), "store"), appends)
	survived := map[bool]int{}
	images := map[bool]int{}
	for k := 1; k <= appends; k++ {
		for _, phaseB := range []bool{false, true} {
			for range variants {
				dir := filepath.Join(t.TempDir(), "image")
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := run.image(rng, dir, k, phaseB); err != nil {
					t.Fatal(err)
				}
				keep := keepImage(t, dir, fmt.Sprintf("image of append %d (phase B %v)", k, phaseB))
				if run.checkImage(t, rng, dir, k) {
					survived[phaseB]++
				}
				keep.Stop()
				images[phaseB]++
				os.RemoveAll(dir)
			}
		}
	}
	t.Logf("segments in the run: %d; images cut before the sync: %d (unacknowledged batch kept whole in %d), after it: %d (kept in %d)",
		countSegments(run.snaps[len(run.snaps)-1]), images[false], survived[false], images[true], survived[true])
}

func countSegments(s snapshot) int {
	n := 0
	for name := range s {
		if isSegment(name) {
			n++
		}
	}
	return n
}

// keepImage copies dir for a post-mortem if the test fails before Stop:
// into EVT_TORTURE_KEEP if that is set. The copy is made before the image
// is opened, so it is the image as built.
func keepImage(t *testing.T, dir, what string) interface{ Stop() bool } {
	into := os.Getenv("EVT_TORTURE_KEEP")
	saved := filepath.Join(t.TempDir(), "saved")
	if into != "" {
		if out, err := exec.Command("cp", "-a", dir, saved).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
	}
	stopped := false
	t.Cleanup(func() {
		if stopped || !t.Failed() {
			return
		}
		t.Logf("%s failed", what)
		if into != "" {
			os.RemoveAll(into)
			if out, err := exec.Command("cp", "-a", saved, into).CombinedOutput(); err != nil {
				t.Logf("cp: %v: %s", err, out)
			} else {
				t.Logf("the image as built is in %s", into)
			}
		}
	})
	return stopper(func() bool { stopped = true; return true })
}

type stopper func() bool

func (s stopper) Stop() bool { return s() }
