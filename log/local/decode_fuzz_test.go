package local

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/evtdev/evt/log"
)

// Fuzz targets for the decoders of the store's own files. Each one holds
// the same property: a decoder either refuses its input (with a
// *CorruptError where it returns an error) or returns a value that
// encodes back to exactly the bytes it read, so nothing a decoder accepts
// can be misread.

func isCorrupt(err error) bool {
	var ce *log.CorruptError
	return errors.As(err, &ce)
}

func FuzzDecodeCommit(f *testing.F) {
	c := commitState{seq: 7, next: 100, active: 40, size: 4096, lastTime: 1764064800e9, lastSync: 1764064800e9}
	copy(c.boot[:], "0123456789abcdef")
	older := c
	older.seq, older.next, older.size = 6, 90, 2048
	file := make([]byte, commitSlotGap+commitSlotSize)
	copy(file, c.encode())
	copy(file[commitSlotGap:], older.encode())
	f.Add(file)
	f.Add(c.encode())
	f.Add(file[:commitSlotGap+commitSlotSize-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeCommitFile(b)
		if err != nil {
			if !isCorrupt(err) {
				t.Fatalf("error %v is not a *CorruptError", err)
			}
			return
		}
		enc := got.encode()
		inA := len(b) >= commitSlotSize && bytes.Equal(b[:commitSlotSize], enc)
		inB := len(b) >= commitSlotGap+commitSlotSize && bytes.Equal(b[commitSlotGap:commitSlotGap+commitSlotSize], enc)
		if !inA && !inB {
			t.Fatalf("decoded %+v, which encodes to neither slot", got)
		}
		// The newer valid slot wins.
		if other, ok := decodeCommit(b[min(len(b), commitSlotGap):]); ok && inA && other.seq > got.seq {
			t.Fatalf("took slot A (seq %d) over a valid slot B (seq %d)", got.seq, other.seq)
		}
	})
}

func FuzzSegmentHeader(f *testing.F) {
	f.Add(encodeSegmentHeaderGen(1, 1764064800e9, 0, 0), uint64(1))
	f.Add(encodeSegmentHeaderGen(12345, 1764064800e9, 3, 64<<20), uint64(12345))
	f.Add([]byte("EVTSEG\x00\x01"), uint64(1))
	f.Fuzz(func(t *testing.T, h []byte, first uint64) {
		err := checkHeaderBytes(h, first)
		if err != nil {
			if !isCorrupt(err) {
				t.Fatalf("error %v is not a *CorruptError", err)
			}
			return
		}
		created := int64(binary.LittleEndian.Uint64(h[24:]))
		gen := binary.LittleEndian.Uint32(h[32:])
		orig := int64(binary.LittleEndian.Uint64(h[40:]))
		if enc := encodeSegmentHeaderGen(first, created, gen, orig); !bytes.Equal(enc, h[:segmentHeaderSize]) {
			t.Fatalf("accepted header\n%x\nencodes to\n%x", h[:segmentHeaderSize], enc)
		}
	})
}

func FuzzHashHeader(f *testing.F) {
	f.Add(encodeHashHeader(headsValues, hashMinSlots), int64(hashHeaderSize+hashMinSlots*(16+8*headsValues)))
	f.Add(encodeHashHeader(1, 1<<20), int64(hashHeaderSize+(1<<20)*24))
	f.Add([]byte("EVTHASH\x01"), int64(0))
	f.Fuzz(func(t *testing.T, hdr []byte, size int64) {
		for _, k := range []int{1, headsValues} {
			slots, err := decodeHashHeader("heads", hdr, k, size)
			if err != nil {
				if !isCorrupt(err) {
					t.Fatalf("error %v is not a *CorruptError", err)
				}
				continue
			}
			if enc := encodeHashHeaderFormat(k, slots, binary.LittleEndian.Uint32(hdr[8:])); !bytes.Equal(enc, hdr[:hashFixedHeader]) {
				t.Fatalf("accepted header\n%x\nencodes to\n%x", hdr[:hashFixedHeader], enc)
			}
			if size != int64(hashHeaderSize+slots*uint64(16+8*k)) {
				t.Fatalf("accepted %d slots of %d values in a file of %d bytes", slots, k, size)
			}
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(snapshotFile{fingerprint: "merge", stream: "account-7", id: "01JDX", snap: log.Snapshot{Version: 3, Position: 42, State: []byte(`{"a":1}`)}}))
	f.Add(encodeSnapshot(snapshotFile{}))
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := decodeSnapshot(b)
		if !ok {
			return
		}
		if enc := encodeSnapshot(got); !bytes.Equal(enc, b) {
			t.Fatalf("accepted snapshot\n%q\nencodes to\n%q", b, enc)
		}
	})
}

func FuzzDecodeRetention(f *testing.F) {
	r := log.Retention{Rules: []log.Rule{{Selection: "order-*", MaxAge: 7 * 24 * time.Hour}, {Selection: "q", UntilAcked: true, MaxCount: 5}}, MaxBytes: 1 << 30, AutoCompact: true}
	b, _ := json.Marshal(r)
	f.Add(b)
	f.Add([]byte(`{"rules":[{"selection":"a[","max_age":1}]}`))
	f.Add([]byte(`{"rules":[{"selection":"a","max_age":-1}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeRetention(b)
		if err != nil {
			if !isCorrupt(err) {
				t.Fatalf("error %v is not a *CorruptError", err)
			}
			return
		}
		enc, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeRetention(enc)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("policy %+v re-encoded as %s reads as %+v, %v", got, enc, again, err)
		}
	})
}

// FuzzDecodeGroupConfig reads a group's config.json the way OpenGroup
// does: refused as a *CorruptError, or a config that writes back (as
// CreateGroup writes it) to one that reads the same.
func FuzzDecodeGroupConfig(f *testing.F) {
	cfg := log.GroupConfig{Name: "g", Selection: "order-*", Types: []string{"Placed"}, AckWait: time.Minute, MaxDeliver: 5, Ordering: "stream", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	b, _ := json.Marshal(&cfg)
	f.Add(b)
	f.Add([]byte(`{"name":"g","ack_wait":-1,"ordering":"none"}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	s, err := Open(f.TempDir(), Options{Create: true, Sync: SyncNone})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	dir := s.groupDir("g")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := s.groupConfig("g")
		if err != nil {
			if !isCorrupt(err) {
				t.Fatalf("error %v is not a *CorruptError", err)
			}
			return
		}
		if err := s.writeJSONAtomic(filepath.Join(dir, "config.json"), &got); err != nil {
			t.Fatal(err)
		}
		again, err := s.groupConfig("g")
		if err != nil {
			t.Fatalf("config %+v written back does not read: %v", got, err)
		}
		// Compared as written: an empty list and none, or one instant in
		// two time zones, are the same config.
		if x, y := mustJSON(t, got), mustJSON(t, again); x != y {
			t.Fatalf("config %s written back reads as %s", x, y)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
