package cmd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

var foldSeed = flag.Uint64("fold-seed", 0, "seed of TestFoldSnapshotsRandomized (0: from the clock)")

// Snapshot correctness (issue 4, "Must show"): folding with and without
// snapshots gives identical states, on many streams with random appends in
// between. Each round appends random events to random streams (through
// log.Batch, for speed), then folds every stream in process with each
// reducer (merge, --reduce, --spec): with snapshots, with --no-snapshot,
// at a random earlier version (--at N, often one before a snapshot), at
// the time of an earlier round (--at @TIME), and the whole selection at
// once. Every output is checked against a model computed here, from the
// events the test appended, independently of the fold package. Between
// rounds the snapshots are deleted, damaged, swapped between streams and
// reducers, replaced by stale ones or by forged ones that do not match
// the log: none of it may crash a fold or change a state.
const (
	foldStreams = 20
	foldRounds  = 12
)

// The jq reducer and spec the test folds with, and what they compute.
const (
	foldTestJQ = `{n: ((.n // 0) + 1), h: (((.h // 0) * 31 + $event.position + $event.version) % 1000003), t: $event.type, d: $event.data}`
	// A: counts and keeps the data; B: counts; other types: the last three
	// versions seen.
	foldTestSpec = `init: {c: {A: 0, B: 0}, other: []}
on:
  A: .c.A += 1 | .lastA = $event.data
  B: .c.B += 1
default: .other = (.other + [$event.version])[-3:]
`
)

// foldEvent is one event the test appended.
type foldEvent struct {
	pos, version uint64
	typ          string
	data         any // decoded with UseNumber
	round        int
}

// foldModel computes the three reducers' states from the events.
type foldModel struct{}

func (foldModel) merge(events []foldEvent) any {
	var state any
	for _, e := range events {
		state = modelMergePatch(state, e.data)
	}
	return state
}

// modelMergePatch is RFC 7396's MergePatch(Target, Patch), copying.
func modelMergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	out := map[string]any{}
	if tm, ok := target.(map[string]any); ok {
		for k, v := range tm {
			out[k] = v
		}
	}
	for k, v := range pm {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = modelMergePatch(out[k], v)
		}
	}
	return out
}

func (foldModel) jq(events []foldEvent) any {
	if len(events) == 0 {
		return nil
	}
	var n, h uint64
	for _, e := range events {
		n++
		h = (h*31 + e.pos + e.version) % 1000003
	}
	last := events[len(events)-1]
	return map[string]any{"n": num(n), "h": num(h), "t": last.typ, "d": last.data}
}

func (foldModel) spec(events []foldEvent) any {
	var a, b uint64
	other := []any{}
	state := map[string]any{}
	for _, e := range events {
		switch e.typ {
		case "A":
			a++
			state["lastA"] = e.data
		case "B":
			b++
		default:
			other = append(other, num(e.version))
			if len(other) > 3 {
				other = other[len(other)-3:]
			}
		}
	}
	state["c"] = map[string]any{"A": num(a), "B": num(b)}
	state["other"] = other
	return state
}

func num(n uint64) json.Number { return json.Number(fmt.Sprint(n)) }

// randomFoldData is an event's data: mostly a merge patch (objects,
// nested ones, nulls that delete, arrays), sometimes another JSON value.
func randomFoldData(rng *rand.Rand, depth int) any {
	if depth == 0 && rng.IntN(20) == 0 {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return json.Number(fmt.Sprint(rng.IntN(1000)))
		case 2:
			return fmt.Sprintf("s%d", rng.IntN(100))
		default:
			return []any{json.Number("1"), nil, map[string]any{"x": nil}}
		}
	}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	m := map[string]any{}
	for range 1 + rng.IntN(4) {
		k := keys[rng.IntN(len(keys))]
		switch r := rng.IntN(10); {
		case r < 3:
			m[k] = json.Number(fmt.Sprint(rng.IntN(100000)))
		case r < 5:
			m[k] = nil
		case r < 7 && depth < 2:
			m[k] = randomFoldData(rng, depth+1)
		case r < 8:
			m[k] = []any{json.Number(fmt.Sprint(rng.IntN(10))), fmt.Sprintf("v%d", rng.IntN(10))}
		default:
			m[k] = fmt.Sprintf("text %d", rng.IntN(1000))
		}
	}
	return m
}

type foldRun struct {
	t    *testing.T
	dir  string
	spec string
}

// fold runs `evt --dir DIR fold ARGS...` in process.
func (r *foldRun) fold(args ...string) (code int, out, errOut string) {
	ios, _, o, e := newTestIOStreams()
	code = run(context.Background(), ios, append([]string{"--dir", r.dir, "fold"}, args...))
	if strings.Contains(e.String(), "internal error") {
		r.t.Fatalf("evt fold %s: %s", strings.Join(args, " "), e)
	}
	return code, o.String(), e.String()
}

// reducers are the reducer flags, by name.
func (r *foldRun) reducers() []struct {
	name  string
	args  []string
	model func([]foldEvent) any
} {
	var m foldModel
	return []struct {
		name  string
		args  []string
		model func([]foldEvent) any
	}{
		{"merge", nil, m.merge},
		{"jq", []string{"--reduce", foldTestJQ}, m.jq},
		{"spec", []string{"--spec", r.spec}, m.spec},
	}
}

// foldRow is one printed line.
type foldRow struct {
	Stream  string
	Version uint64
	State   any
}

func decodeFoldRows(t *testing.T, out string) []foldRow {
	t.Helper()
	var rows []foldRow
	d := json.NewDecoder(strings.NewReader(out))
	d.UseNumber()
	for d.More() {
		var row foldRow
		if err := d.Decode(&row); err != nil {
			t.Fatalf("fold output %q: %v", out, err)
		}
		rows = append(rows, row)
	}
	return rows
}

func TestFoldSnapshotsRandomized(t *testing.T) {
	seed := *foldSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -fold-seed %d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	rounds := foldRounds
	if testing.Short() {
		rounds = 6
	}

	// Nothing from the environment: no EVT_ variables, no config file.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "EVT_") {
			t.Setenv(k, "")
		}
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Chdir(t.TempDir())

	r := &foldRun{t: t, dir: filepath.Join(t.TempDir(), "store"), spec: filepath.Join(t.TempDir(), "spec.yaml")}
	if err := os.WriteFile(r.spec, []byte(foldTestSpec), 0o666); err != nil {
		t.Fatal(err)
	}
	snapDir := filepath.Join(r.dir, "snapshots")

	streams := make([]string, foldStreams)
	for i := range streams {
		streams[i] = fmt.Sprintf("s-%02d", i)
	}
	events := map[string][]foldEvent{}
	var roundTimes []time.Time // the time of each round's batch
	var stale map[string][]byte
	var allPositions []uint64
	var usedSnapshots int // folds that started from a snapshot

	for round := range rounds {
		// Append: each stream gets nothing, a few events, or enough to
		// cross the snapshot threshold (64) in one fold; streams
		// interleave in position order.
		var adds []string
		for _, name := range streams {
			n := 0
			switch x := rng.IntN(10); {
			case x < 2:
			case x < 6:
				n = 1 + rng.IntN(10)
			default:
				n = 64 + rng.IntN(30)
			}
			for range n {
				adds = append(adds, name)
			}
		}
		rng.Shuffle(len(adds), func(i, j int) { adds[i], adds[j] = adds[j], adds[i] })
		s, err := local.Open(r.dir, local.Options{Create: true, Sync: local.SyncNone, SegmentSize: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		var b log.Batch
		var pending []foldEvent
		for _, name := range adds {
			typ := []string{"A", "B", "C", "D"}[rng.IntN(4)]
			data, err := json.Marshal(randomFoldData(rng, 0))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Add(name, typ, "", data, nil); err != nil {
				t.Fatal(err)
			}
			d := json.NewDecoder(bytes.NewReader(data))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil {
				t.Fatal(err)
			}
			pending = append(pending, foldEvent{typ: typ, data: v, round: round})
		}
		var roundTime time.Time
		if b.Len() > 0 {
			res, err := s.Append(context.Background(), &b)
			if err != nil {
				t.Fatal(err)
			}
			for i, res := range res {
				e := pending[i]
				e.pos, e.version = res.Position, res.Version
				events[res.Stream] = append(events[res.Stream], e)
				allPositions = append(allPositions, res.Position)
				roundTime = res.Time
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		roundTimes = append(roundTimes, roundTime)

		// Between rounds, do something to the snapshots.
		damage := "none"
		if round > 0 {
			damage = damageSnapshots(t, rng, round, snapDir, stale, allPositions)
		}
		if round == 3 || round == 8 {
			stale = readSnapshots(t, snapDir) // valid now, stale later
		}

		for _, red := range r.reducers() {
			plain := map[string]string{} // each stream's --no-snapshot output
			for _, name := range streams {
				evs := events[name]
				label := fmt.Sprintf("round %d (snapshots: %s), %s, %s", round, damage, red.name, name)
				before := readSnapshots(t, snapDir)

				code1, out1, err1 := r.fold(append([]string{name}, red.args...)...)
				code2, out2, err2 := r.fold(append([]string{name, "--no-snapshot"}, red.args...)...)
				if code1 != code2 || out1 != out2 {
					t.Fatalf("%s: with snapshots: exit %d, %q %s; without: exit %d, %q %s", label, code1, out1, err1, code2, out2, err2)
				}
				checkFoldRow(t, label, code1, out1, err1, name, evs, red.model)
				plain[name] = out2
				// A valid snapshot of this stream, older than the stream,
				// that the fold left as it was: the fold started from it
				// (from the first event, it would have read at least 64
				// events and saved a newer one).
				for path, b := range readSnapshots(t, snapDir) {
					if ver, stream, ok := snapshotInfo(b); ok && stream == name && len(evs) > 0 && ver < evs[len(evs)-1].version && bytes.Equal(before[path], b) {
						usedSnapshots++
					}
				}

				// --at N: a random version, often one of the first few
				// (before any snapshot of the stream).
				if len(evs) > 0 {
					last := evs[len(evs)-1].version
					var n uint64
					switch rng.IntN(3) {
					case 0: // anywhere
						n = 1 + rng.Uint64N(last)
					case 1: // before any snapshot of the stream
						n = 1 + rng.Uint64N(min(last, 5))
					default: // at or past the end
						n = last + uint64(rng.IntN(3))
					}
					{
						at := fmt.Sprint(n)
						lbl := label + " --at " + at
						code1, out1, err1 := r.fold(append([]string{name, "--at", at}, red.args...)...)
						code2, out2, err2 := r.fold(append([]string{name, "--at", at, "--no-snapshot"}, red.args...)...)
						if code1 != code2 || out1 != out2 {
							t.Fatalf("%s: with snapshots: exit %d, %q %s; without: exit %d, %q %s", lbl, code1, out1, err1, code2, out2, err2)
						}
						upTo := slices.IndexFunc(evs, func(e foldEvent) bool { return e.version > n })
						if upTo < 0 {
							upTo = len(evs)
						}
						checkFoldRow(t, lbl, code1, out1, err1, name, evs[:upTo], red.model)
					}
				}

				// Sometimes --at @TIME of an earlier round: the events of
				// the rounds up to it (a round is one batch, so one time).
				k := rng.IntN(round + 1)
				if rng.IntN(3) == 0 && !roundTimes[k].IsZero() {
					at := "@" + roundTimes[k].UTC().Format(time.RFC3339Nano)
					lbl := fmt.Sprintf("%s --at %s (round %d)", label, at, k)
					code1, out1, err1 := r.fold(append([]string{name, "--at", at}, red.args...)...)
					code2, out2, err2 := r.fold(append([]string{name, "--at", at, "--no-snapshot"}, red.args...)...)
					if code1 != code2 || out1 != out2 {
						t.Fatalf("%s: with snapshots: exit %d, %q %s; without: exit %d, %q %s", lbl, code1, out1, err1, code2, out2, err2)
					}
					upTo := slices.IndexFunc(evs, func(e foldEvent) bool { return e.round > k })
					if upTo < 0 {
						upTo = len(evs)
					}
					checkFoldRow(t, lbl, code1, out1, err1, name, evs[:upTo], red.model)
				}
			}

			// The selection folds every stream in one pass: the same rows.
			code, out, errOut := r.fold(append([]string{"s-*"}, red.args...)...)
			if code != exitOK {
				t.Fatalf("round %d, %s, s-*: exit %d: %s", round, red.name, code, errOut)
			}
			var want strings.Builder
			for _, name := range streams {
				if len(events[name]) > 0 {
					want.WriteString(plain[name])
				}
			}
			if out != want.String() {
				t.Fatalf("round %d, %s: the selection printed\n%s\nthe streams one by one\n%s", round, red.name, out, want.String())
			}
		}
	}
	n := len(readSnapshots(t, snapDir))
	t.Logf("%d rounds, %d events in %d streams; %d snapshot files at the end; %d folds started from a snapshot",
		rounds, len(allPositions), len(streams), n, usedSnapshots)
	if n == 0 || usedSnapshots == 0 {
		t.Fatalf("no snapshot was saved or used: the test checked nothing about snapshots")
	}
}

// checkFoldRow checks one stream's fold output against the model.
func checkFoldRow(t *testing.T, label string, code int, out, errOut, name string, evs []foldEvent, model func([]foldEvent) any) {
	t.Helper()
	if len(evs) == 0 {
		if code != exitNotFound || out != "" || !strings.HasPrefix(errOut, "evt: not found: stream "+name) {
			t.Fatalf("%s: no events: exit %d, %q, %q; want exit 4, nothing printed", label, code, out, errOut)
		}
		return
	}
	if code != exitOK || errOut != "" {
		t.Fatalf("%s: exit %d: %s", label, code, errOut)
	}
	rows := decodeFoldRows(t, out)
	want := foldRow{Stream: name, Version: evs[len(evs)-1].version, State: model(evs)}
	if len(rows) != 1 || !reflect.DeepEqual(rows[0], want) {
		wantJSON, _ := json.Marshal(want)
		t.Fatalf("%s: printed %s\nwant %s", label, out, wantJSON)
	}
}

// readSnapshots returns the snapshot files' contents by path.
func readSnapshots(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".snap") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Join(dir, e.Name())] = b
	}
	return files
}

// damageSnapshots does one thing to the snapshot files, chosen by the
// round, and says what.
func damageSnapshots(t *testing.T, rng *rand.Rand, round int, dir string, stale map[string][]byte, positions []uint64) string {
	t.Helper()
	files := readSnapshots(t, dir)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	switch round % 6 {
	case 1:
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		return "deleted"
	case 2:
		for _, p := range paths {
			b := files[p]
			switch rng.IntN(5) {
			case 0: // flip bytes anywhere
				for range 1 + rng.IntN(4) {
					b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
				}
			case 1: // cut short
				b = b[:rng.IntN(len(b))]
			case 2: // garbage of the same length
				for i := range b {
					b[i] = byte(rng.IntN(256))
				}
			case 3:
				b = nil
			default: // something after the checksum
				b = append(b, "junk"...)
			}
			write(p, b)
		}
		return "corrupted"
	case 3:
		// Each file gets another's content: another stream's snapshot, or
		// another reducer's.
		for i, p := range paths {
			if len(paths) > 1 {
				write(p, files[paths[(i+1+rng.IntN(len(paths)-1))%len(paths)]])
			}
		}
		return "swapped"
	case 4:
		// Valid but old snapshots (from an earlier round) come back.
		for p, b := range stale {
			write(p, b)
		}
		return "stale"
	case 5:
		// Forged with a correct checksum but not matching the log: another
		// stream's event, the wrong version, a position past the end, a
		// state that is not JSON.
		for _, p := range paths {
			b, ok := forgeSnapshot(files[p], rng, positions)
			if ok {
				write(p, b)
			}
		}
		return "forged"
	}
	return "none"
}

// snapshotHeader is the size of a snapshot file's header: magic, version,
// position, and the lengths of fingerprint, stream, state and event id.
const snapshotHeader = 8 + 8 + 8 + 4 + 4 + 4 + 4

// snapshotInfo reads the version and stream of a snapshot file.
func snapshotInfo(b []byte) (version uint64, stream string, ok bool) {
	if len(b) < snapshotHeader+4 || string(b[:8]) != "EVTSNAP2" {
		return 0, "", false
	}
	fl := int(binary.LittleEndian.Uint32(b[24:]))
	sl := int(binary.LittleEndian.Uint32(b[28:]))
	if snapshotHeader+fl+sl > len(b) {
		return 0, "", false
	}
	return binary.LittleEndian.Uint64(b[8:]), string(b[snapshotHeader+fl : snapshotHeader+fl+sl]), true
}

// forgeSnapshot rewrites a snapshot file (layout in log/local/snapshot.go) so
// that its checksum is right and its content wrong.
func forgeSnapshot(b []byte, rng *rand.Rand, positions []uint64) ([]byte, bool) {
	const header = snapshotHeader
	if len(b) < header+4 || string(b[:8]) != "EVTSNAP2" {
		return nil, false
	}
	b = slices.Clone(b[:len(b)-4])
	ver := binary.LittleEndian.Uint64(b[8:])
	pos := binary.LittleEndian.Uint64(b[16:])
	switch rng.IntN(4) {
	case 0: // an event of another stream (or another version of this one)
		binary.LittleEndian.PutUint64(b[16:], positions[rng.IntN(len(positions))])
		if binary.LittleEndian.Uint64(b[16:]) == pos {
			binary.LittleEndian.PutUint64(b[8:], ver+1)
		}
	case 1:
		binary.LittleEndian.PutUint64(b[8:], ver-1)
	case 2:
		binary.LittleEndian.PutUint64(b[16:], pos+1_000_000)
	default:
		fl := binary.LittleEndian.Uint32(b[24:])
		sl := binary.LittleEndian.Uint32(b[28:])
		stl := binary.LittleEndian.Uint32(b[32:])
		id := slices.Clone(b[header+int(fl)+int(sl)+int(stl):])
		b = append(append(b[:header+int(fl)+int(sl)], `{"a":`...), id...)
		binary.LittleEndian.PutUint32(b[32:], 5)
	}
	return binary.LittleEndian.AppendUint32(b, codec.Checksum(b)), true
}
