package local

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/atomicfile"
	"github.com/evtdev/evt/log/local/vfs"
)

// Snapshots cache the state of a fold: (reducer fingerprint, stream) →
// the state after version V at position P. They are derived data in
// DIR/snapshots/, one file each, written atomically, deletable at any
// time; a fold that finds none folds from the first event.
//
// File layout: magic "EVTSNAP2", version u64, position u64, fingerprint
// length u32, stream length u32, state length u32, id length u32, then
// fingerprint, stream, state (JSON), the id of the event at position,
// and a crc32c u32 of everything before it. The id ties the snapshot to
// that very event: a log that lost its tail and got other events at the
// same positions does not match.
const (
	snapshotDir   = "snapshots"
	snapshotMagic = "EVTSNAP2"
	snapHeader    = 8 + 8 + 8 + 4 + 4 + 4 + 4
)

func (s *Store) snapshotPath(fingerprint, stream string) string {
	h := sha256.Sum256([]byte(fingerprint + "\x00" + stream))
	return join(join(s.dir, snapshotDir), hex.EncodeToString(h[:16])+".snap")
}

// LoadSnapshot returns the cached state of stream under the reducer with
// this fingerprint, if there is a valid one that still matches the log
// (the event it names exists, in this stream, at that version).
func (s *Store) LoadSnapshot(fingerprint, stream string) (log.Snapshot, bool) {
	fingerprint, ok := s.snapshotKey(fingerprint, stream)
	if !ok {
		return log.Snapshot{}, false
	}
	b, err := vfs.ReadFile(s.fsys, s.snapshotPath(fingerprint, stream))
	if err != nil {
		return log.Snapshot{}, false
	}
	f, ok := decodeSnapshot(b)
	if !ok || f.fingerprint != fingerprint || f.stream != stream {
		return log.Snapshot{}, false
	}
	c, err := s.committed()
	if err != nil {
		return log.Snapshot{}, false
	}
	rec, err := s.recordAt(f.snap.Position, &c)
	if err != nil || string(rec.Stream) != stream || rec.Version != f.snap.Version || string(rec.ID) != f.id {
		return log.Snapshot{}, false
	}
	return f.snap, true
}

// SaveSnapshot stores a fold state. It is best effort: a store that is
// read-only to this user simply gets no snapshots.
func (s *Store) SaveSnapshot(fingerprint, stream string, snap log.Snapshot) error {
	fingerprint, ok := s.snapshotKey(fingerprint, stream)
	if !ok {
		return nil
	}
	c, err := s.committed()
	if err != nil {
		return err
	}
	rec, err := s.recordAt(snap.Position, &c)
	if err != nil {
		return err
	}
	if string(rec.Stream) != stream || rec.Version != snap.Version {
		return fmt.Errorf("snapshot of %s: position %d is not its version %d", stream, snap.Position, snap.Version)
	}
	id := string(rec.ID)
	dir := join(s.dir, snapshotDir)
	if err := s.fsys.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	b := encodeSnapshot(snapshotFile{fingerprint: fingerprint, stream: stream, id: id, snap: snap})
	path := s.snapshotPath(fingerprint, stream)
	return atomicfile.ReplaceFS(s.fsys, path, b, 0o600) // a cache: no fsync
}

// snapshotKey ties a snapshot to the events it was folded from. A stream
// that was truncated or deleted folds from after its cut, so the cut is
// part of the key: a snapshot taken before the cut no longer matches (and
// compaction deletes it, see removeStaleSnapshots). A stream some
// retention rule limits has no stable first event at all: no snapshots.
func (s *Store) snapshotKey(fingerprint, stream string) (string, bool) {
	r, err := s.Retention()
	if err != nil || r.MaxBytes > 0 {
		return "", false
	}
	for _, rule := range r.Rules {
		if sel, err := codec.ParseSelection(rule.Selection); err != nil || sel.Match(stream) {
			return "", false
		}
	}
	h, err := s.tables()
	if err != nil {
		return "", false
	}
	var vals [headsValues]uint64
	if h.get(keyOf(stream), vals[:]) {
		if cut, _ := splitCut(vals[2]); cut > 0 {
			return fingerprint + cutSuffix(cut), true
		}
	}
	return fingerprint, true
}

// cutSuffix is what snapshotKey adds to the fingerprint of a stream cut
// at version cut.
func cutSuffix(cut uint64) string { return "\x00cut=" + strconv.FormatUint(cut, 10) }

// snapshotFile is the content of one snapshot file.
type snapshotFile struct {
	fingerprint, stream, id string
	snap                    log.Snapshot
}

func encodeSnapshot(f snapshotFile) []byte {
	b := make([]byte, snapHeader, snapHeader+len(f.fingerprint)+len(f.stream)+len(f.snap.State)+len(f.id)+4)
	copy(b, snapshotMagic)
	binary.LittleEndian.PutUint64(b[8:], f.snap.Version)
	binary.LittleEndian.PutUint64(b[16:], f.snap.Position)
	binary.LittleEndian.PutUint32(b[24:], uint32(len(f.fingerprint)))
	binary.LittleEndian.PutUint32(b[28:], uint32(len(f.stream)))
	binary.LittleEndian.PutUint32(b[32:], uint32(len(f.snap.State)))
	binary.LittleEndian.PutUint32(b[36:], uint32(len(f.id)))
	b = append(b, f.fingerprint...)
	b = append(b, f.stream...)
	b = append(b, f.snap.State...)
	b = append(b, f.id...)
	return binary.LittleEndian.AppendUint32(b, codec.Checksum(b))
}

// decodeSnapshot reads a snapshot file. It accepts exactly what
// encodeSnapshot writes (FuzzDecodeSnapshot): a damaged file is simply
// not a snapshot, and the fold starts from the first event.
func decodeSnapshot(b []byte) (snapshotFile, bool) {
	if len(b) < snapHeader+4 || string(b[:8]) != snapshotMagic {
		return snapshotFile{}, false
	}
	n := len(b) - 4
	if binary.LittleEndian.Uint32(b[n:]) != codec.Checksum(b[:n]) {
		return snapshotFile{}, false
	}
	fl := uint64(binary.LittleEndian.Uint32(b[24:]))
	sl := uint64(binary.LittleEndian.Uint32(b[28:]))
	stl := uint64(binary.LittleEndian.Uint32(b[32:]))
	il := uint64(binary.LittleEndian.Uint32(b[36:]))
	if snapHeader+fl+sl+stl+il != uint64(n) {
		return snapshotFile{}, false
	}
	body := b[snapHeader:n]
	return snapshotFile{
		fingerprint: string(body[:fl]),
		stream:      string(body[fl : fl+sl]),
		id:          string(body[fl+sl+stl:]),
		snap: log.Snapshot{
			Version:  binary.LittleEndian.Uint64(b[8:]),
			Position: binary.LittleEndian.Uint64(b[16:]),
			State:    body[fl+sl : fl+sl+stl],
		},
	}, true
}
