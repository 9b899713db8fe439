package log

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"

	"github.com/evtdev/evt/codec"
)

// Snapshots cache the state of a fold: (reducer fingerprint, stream) →
// the state after version V at position P. They are derived data in
// DIR/snapshots/, one file each, written atomically, deletable at any
// time; a fold that finds none folds from the first event.
//
// File layout: magic "EVTSNAP1", version u64, position u64, fingerprint
// length u32, stream length u32, state length u32, then fingerprint,
// stream, state (JSON), and a crc32c u32 of everything before it.
const (
	snapshotDir   = "snapshots"
	snapshotMagic = "EVTSNAP1"
	snapHeader    = 8 + 8 + 8 + 4 + 4 + 4
)

// Snapshot is a cached fold state.
type Snapshot struct {
	Version  uint64 // the stream version folded through
	Position uint64 // that event's position
	State    []byte // the state, as JSON
}

func (s *Store) snapshotPath(fingerprint, stream string) string {
	h := sha256.Sum256([]byte(fingerprint + "\x00" + stream))
	return join(join(s.dir, snapshotDir), hex.EncodeToString(h[:16])+".snap")
}

// LoadSnapshot returns the cached state of stream under the reducer with
// this fingerprint, if there is a valid one that still matches the log
// (the event it names exists, in this stream, at that version).
func (s *Store) LoadSnapshot(fingerprint, stream string) (Snapshot, bool) {
	b, err := os.ReadFile(s.snapshotPath(fingerprint, stream))
	if err != nil || len(b) < snapHeader+4 || string(b[:8]) != snapshotMagic {
		return Snapshot{}, false
	}
	n := len(b) - 4
	if binary.LittleEndian.Uint32(b[n:]) != codec.Checksum(b[:n]) {
		return Snapshot{}, false
	}
	b = b[:n]
	ver := binary.LittleEndian.Uint64(b[8:])
	pos := binary.LittleEndian.Uint64(b[16:])
	fl := int(binary.LittleEndian.Uint32(b[24:]))
	sl := int(binary.LittleEndian.Uint32(b[28:]))
	stl := int(binary.LittleEndian.Uint32(b[32:]))
	if snapHeader+fl+sl+stl != len(b) {
		return Snapshot{}, false
	}
	body := b[snapHeader:]
	if string(body[:fl]) != fingerprint || string(body[fl:fl+sl]) != stream {
		return Snapshot{}, false
	}
	c, err := s.committed()
	if err != nil {
		return Snapshot{}, false
	}
	rec, err := s.recordAt(pos, &c)
	if err != nil || string(rec.Stream) != stream || rec.Version != ver {
		return Snapshot{}, false
	}
	return Snapshot{Version: ver, Position: pos, State: body[fl+sl:]}, true
}

// SaveSnapshot stores a fold state. It is best effort: a store that is
// read-only to this user simply gets no snapshots.
func (s *Store) SaveSnapshot(fingerprint, stream string, snap Snapshot) error {
	dir := join(s.dir, snapshotDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	b := make([]byte, snapHeader, snapHeader+len(fingerprint)+len(stream)+len(snap.State)+4)
	copy(b, snapshotMagic)
	binary.LittleEndian.PutUint64(b[8:], snap.Version)
	binary.LittleEndian.PutUint64(b[16:], snap.Position)
	binary.LittleEndian.PutUint32(b[24:], uint32(len(fingerprint)))
	binary.LittleEndian.PutUint32(b[28:], uint32(len(stream)))
	binary.LittleEndian.PutUint32(b[32:], uint32(len(snap.State)))
	b = append(b, fingerprint...)
	b = append(b, stream...)
	b = append(b, snap.State...)
	b = binary.LittleEndian.AppendUint32(b, codec.Checksum(b))
	path := s.snapshotPath(fingerprint, stream)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
