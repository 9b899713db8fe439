package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// recordFields is everything a record carries.
type recordFields struct {
	stream, typ, id string
	data, meta      []byte
	pos, ver, prev  uint64
	time            int64
	flags           uint16
}

func (f recordFields) encode() []byte {
	b := AppendRecord(nil, f.stream, f.typ, f.id, f.data, f.meta)
	PatchRecord(b, f.pos, f.ver, f.prev, f.time, f.flags)
	return b
}

func validFields() recordFields {
	return recordFields{
		stream: "order-42", typ: "Placed", id: "01J0000000000000000000000A",
		data: []byte(`{"total":12}`), meta: []byte(`{"by":"me"}`),
		pos: 1000, ver: 7, prev: 990, time: 1700000000123456789, flags: FlagEndOfBatch,
	}
}

func checkDecoded(t *testing.T, r Record, f recordFields, size int) {
	t.Helper()
	if r.Position != f.pos || r.Version != f.ver || r.Prev != f.prev || r.Time != f.time || r.Flags != f.flags {
		t.Errorf("header: got pos %d ver %d prev %d time %d flags %#x, want %d %d %d %d %#x",
			r.Position, r.Version, r.Prev, r.Time, r.Flags, f.pos, f.ver, f.prev, f.time, f.flags)
	}
	if string(r.Stream) != f.stream || string(r.Type) != f.typ || string(r.ID) != f.id {
		t.Errorf("names: got %q %q %q, want %q %q %q", r.Stream, r.Type, r.ID, f.stream, f.typ, f.id)
	}
	if !bytes.Equal(r.Data, f.data) {
		t.Errorf("data: got %q, want %q", clip(string(r.Data)), clip(string(f.data)))
	}
	if len(f.meta) == 0 {
		if r.Metadata != nil {
			t.Errorf("metadata: got %q, want nil", r.Metadata)
		}
	} else if !bytes.Equal(r.Metadata, f.meta) {
		t.Errorf("metadata: got %q, want %q", clip(string(r.Metadata)), clip(string(f.meta)))
	}
	if r.Size != size {
		t.Errorf("size %d, want %d", r.Size, size)
	}
	if r.EndOfBatch() != (f.flags&FlagEndOfBatch != 0) {
		t.Errorf("EndOfBatch %v with flags %#x", r.EndOfBatch(), f.flags)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	maxData := MaxRecordSize - RecordHeaderSize - MaxStreamLen - MaxTypeLen - MaxIDLen
	tests := []struct {
		name string
		edit func(*recordFields)
	}{
		{"all fields", func(*recordFields) {}},
		{"no metadata", func(f *recordFields) { f.meta = nil }},
		{"empty metadata is absent", func(f *recordFields) { f.meta = []byte{} }},
		{"first of stream", func(f *recordFields) { f.ver, f.prev = 1, 0 }},
		{"no flags", func(f *recordFields) { f.flags = 0 }},
		{"tombstone", func(f *recordFields) { f.flags = FlagTombstone }},
		{"all known flags", func(f *recordFields) { f.flags = FlagEndOfBatch | FlagTombstone }},
		{"position 1", func(f *recordFields) { f.pos, f.ver, f.prev = 1, 1, 0 }},
		{"huge numbers", func(f *recordFields) {
			f.pos, f.ver, f.prev = 1<<64-1, 1<<64-1, 1<<64-2
		}},
		{"negative time", func(f *recordFields) { f.time = -1 }},
		{"min time", func(f *recordFields) { f.time = -1 << 63 }},
		{"one-byte names", func(f *recordFields) { f.stream, f.typ, f.id = "s", "t", "i" }},
		{"max names", func(f *recordFields) {
			f.stream = strings.Repeat("s", MaxStreamLen)
			f.typ = strings.Repeat("t", MaxTypeLen)
			f.id = strings.Repeat("i", MaxIDLen)
		}},
		{"max record, data only", func(f *recordFields) {
			f.stream = strings.Repeat("s", MaxStreamLen)
			f.typ = strings.Repeat("t", MaxTypeLen)
			f.id = strings.Repeat("i", MaxIDLen)
			f.data = bytes.Repeat([]byte("d"), maxData)
			f.meta = nil
		}},
		{"max record, data and metadata", func(f *recordFields) {
			f.stream = strings.Repeat("s", MaxStreamLen)
			f.typ = strings.Repeat("t", MaxTypeLen)
			f.id = strings.Repeat("i", MaxIDLen)
			f.data = bytes.Repeat([]byte("d"), maxData/2)
			f.meta = bytes.Repeat([]byte("m"), maxData-maxData/2)
		}},
		{"binary payload", func(f *recordFields) {
			f.data = []byte{0, 1, 2, 0xff, 0}
			f.meta = []byte{0}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := validFields()
			tt.edit(&f)
			want := RecordSize(f.stream, f.typ, f.id, f.data, f.meta)
			b := f.encode()
			if len(b) != want {
				t.Fatalf("encoded %d bytes, RecordSize says %d", len(b), want)
			}
			if want > MaxRecordSize {
				t.Fatalf("test case exceeds MaxRecordSize: %d", want)
			}
			if RecordLength(b) != want {
				t.Fatalf("RecordLength %d, want %d", RecordLength(b), want)
			}
			r, err := DecodeRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			checkDecoded(t, r, f, want)

			// Trailing bytes (the next record) are not part of it.
			r, err = DecodeRecord(append(append([]byte(nil), b...), 0xAA, 0xBB, 0xCC))
			if err != nil {
				t.Fatalf("with trailing bytes: %v", err)
			}
			checkDecoded(t, r, f, want)

			// Every strict prefix is short (or, when nothing but zeros, bad).
			for _, n := range []int{0, 1, 3, 4, 8, RecordHeaderSize - 1, RecordHeaderSize, want - 1} {
				if n >= want || n < 0 {
					continue
				}
				_, err := DecodeRecord(b[:n])
				if !errors.Is(err, ErrShortRecord) {
					t.Errorf("prefix of %d bytes: %v, want ErrShortRecord", n, err)
				}
			}

			ev := r.Event()
			if ev.Position != f.pos || ev.Stream != f.stream || ev.Version != f.ver || ev.Type != f.typ ||
				ev.ID != f.id || !ev.Time.Equal(time.Unix(0, f.time)) || ev.Time.Location() != time.UTC ||
				!bytes.Equal(ev.Data, f.data) {
				t.Errorf("Event() = %+v", ev)
			}
			if (len(f.meta) == 0) != (ev.Metadata == nil) {
				t.Errorf("Event().Metadata = %q with meta %q", ev.Metadata, f.meta)
			}
		})
	}
}

// TestAppendRecordOntoBuffer: records encoded back to back decode back to
// back, and PatchRecord on one leaves its neighbours alone.
func TestAppendRecordOntoBuffer(t *testing.T) {
	var buf []byte
	var offs []int
	for i := 0; i < 5; i++ {
		offs = append(offs, len(buf))
		buf = AppendRecord(buf, "s-1", "T", string(rune('a'+i)), []byte(`{"i":1}`), nil)
	}
	for i, off := range offs {
		PatchRecord(buf[off:], uint64(10+i), uint64(1+i), uint64(9+i)*uint64(min(i, 1)), int64(i), 0)
	}
	PatchRecord(buf[offs[4]:], 14, 5, 13, 4, FlagEndOfBatch)
	p := buf
	for i := 0; i < 5; i++ {
		r, err := DecodeRecord(p)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if r.Position != uint64(10+i) || string(r.ID) != string(rune('a'+i)) || r.EndOfBatch() != (i == 4) {
			t.Fatalf("record %d: %+v", i, r)
		}
		p = p[r.Size:]
	}
	if len(p) != 0 {
		t.Fatalf("%d bytes left over", len(p))
	}
}

// put* edit a valid encoded record in place; reseal recomputes the checksum
// so the damage is seen by the field checks, not the CRC.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[4:], Checksum(b[8:RecordLength(b)]))
	return b
}

func TestDecodeRecordMalformed(t *testing.T) {
	valid := validFields().encode()
	n := len(valid)
	edit := func(fn func(b []byte) []byte) []byte {
		return fn(append([]byte(nil), valid...))
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShortRecord},
		{"three bytes", []byte{1, 2, 3}, ErrShortRecord},
		{"three zero bytes", []byte{0, 0, 0}, ErrShortRecord},
		{"four zero bytes", make([]byte, 4), ErrBadRecord},
		{"short zero bytes", make([]byte, RecordHeaderSize-1), ErrBadRecord},
		{"header of zero bytes", make([]byte, RecordHeaderSize), ErrBadRecord},
		{"page of zero bytes", make([]byte, 4096), ErrBadRecord},
		{"half a header", valid[:RecordHeaderSize/2], ErrShortRecord},
		{"header only", valid[:RecordHeaderSize], ErrShortRecord},
		{"cut in the body", valid[:n-1], ErrShortRecord},
		{"length zero, rest valid", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b, 0)
			return b
		}), ErrBadRecord},
		{"length below header", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b, RecordHeaderSize-1)
			return b
		}), ErrBadRecord},
		{"length above max", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b, MaxRecordSize+1)
			return b
		}), ErrBadRecord},
		{"length all ones", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b, 0xffffffff)
			return b
		}), ErrBadRecord},
		{"length one more than the buffer", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b, uint32(n+1))
			return b
		}), ErrShortRecord},
		{"length one less, checksum resealed", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b, uint32(n-1))
			return reseal(b)
		}), ErrBadRecord},
		{"checksum field flipped", edit(func(b []byte) []byte {
			b[4] ^= 1
			return b
		}), ErrChecksum},
		{"position bit flipped", edit(func(b []byte) []byte {
			b[8] ^= 0x10
			return b
		}), ErrChecksum},
		{"flags bit flipped", edit(func(b []byte) []byte {
			b[40] ^= 1
			return b
		}), ErrChecksum},
		{"data bit flipped", edit(func(b []byte) []byte {
			b[n-15] ^= 0x80
			return b
		}), ErrChecksum},
		{"last byte flipped", edit(func(b []byte) []byte {
			b[n-1] ^= 1
			return b
		}), ErrChecksum},
		{"unknown flag", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[40:], FlagEndOfBatch|1<<3)
			return reseal(b)
		}), ErrBadRecord},
		{"high flag", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[40:], 1<<15)
			return reseal(b)
		}), ErrBadRecord},
		{"reserved byte 45", edit(func(b []byte) []byte { b[45] = 1; return reseal(b) }), ErrBadRecord},
		{"reserved byte 46", edit(func(b []byte) []byte { b[46] = 1; return reseal(b) }), ErrBadRecord},
		{"reserved byte 47", edit(func(b []byte) []byte { b[47] = 0x80; return reseal(b) }), ErrBadRecord},
		{"empty stream", edit(func(b []byte) []byte {
			b[42] = 0
			binary.LittleEndian.PutUint32(b[48:], binary.LittleEndian.Uint32(b[48:])+uint32(len("order-42")))
			return reseal(b)
		}), ErrBadRecord},
		{"empty type", edit(func(b []byte) []byte {
			b[43] = 0
			binary.LittleEndian.PutUint32(b[48:], binary.LittleEndian.Uint32(b[48:])+uint32(len("Placed")))
			return reseal(b)
		}), ErrBadRecord},
		{"empty id", edit(func(b []byte) []byte {
			b[44] = 0
			binary.LittleEndian.PutUint32(b[48:], binary.LittleEndian.Uint32(b[48:])+26)
			return reseal(b)
		}), ErrBadRecord},
		{"stream length one more", edit(func(b []byte) []byte { b[42]++; return reseal(b) }), ErrBadRecord},
		{"type length one less", edit(func(b []byte) []byte { b[43]--; return reseal(b) }), ErrBadRecord},
		{"id length one more", edit(func(b []byte) []byte { b[44]++; return reseal(b) }), ErrBadRecord},
		{"data length one more", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[48:], binary.LittleEndian.Uint32(b[48:])+1)
			return reseal(b)
		}), ErrBadRecord},
		{"metadata length one less", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[52:], binary.LittleEndian.Uint32(b[52:])-1)
			return reseal(b)
		}), ErrBadRecord},
		{"data length past max", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[48:], MaxRecordSize+1)
			return reseal(b)
		}), ErrBadRecord},
		{"lengths that wrap around 32 bits", edit(func(b []byte) []byte {
			// data + metadata = 2^32 + (their real sum): wraps in uint32
			// arithmetic, must not in the check.
			dl := binary.LittleEndian.Uint32(b[48:])
			ml := binary.LittleEndian.Uint32(b[52:])
			binary.LittleEndian.PutUint32(b[48:], dl+ml+0x80000000)
			binary.LittleEndian.PutUint32(b[52:], 0x80000000)
			return reseal(b)
		}), ErrBadRecord},
		{"metadata length all ones", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[52:], 0xffffffff)
			return reseal(b)
		}), ErrBadRecord},
		{"position zero", recordFields{stream: "s", typ: "t", id: "i", data: []byte("{}"), pos: 0, ver: 1}.encode(), ErrBadRecord},
		{"version zero", recordFields{stream: "s", typ: "t", id: "i", data: []byte("{}"), pos: 5, ver: 0}.encode(), ErrBadRecord},
		{"prev equals position", recordFields{stream: "s", typ: "t", id: "i", data: []byte("{}"), pos: 5, ver: 2, prev: 5}.encode(), ErrBadRecord},
		{"prev after position", recordFields{stream: "s", typ: "t", id: "i", data: []byte("{}"), pos: 5, ver: 2, prev: 6}.encode(), ErrBadRecord},
		{"prev max", recordFields{stream: "s", typ: "t", id: "i", data: []byte("{}"), pos: 5, ver: 2, prev: 1<<64 - 1}.encode(), ErrBadRecord},
	}
	sentinels := []error{ErrShortRecord, ErrChecksum, ErrBadRecord}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRecord(tt.in)
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) != (s == tt.want) {
					t.Fatalf("error %q: errors.Is(%v) = %v", err, s, errors.Is(err, s))
				}
			}
		})
	}
}

// FuzzDecodeRecord: DecodeRecord never panics, and whatever it accepts is
// exactly what AppendRecord+PatchRecord make of the fields it returns.
func FuzzDecodeRecord(f *testing.F) {
	v := validFields()
	f.Add(v.encode())
	v.meta = nil
	f.Add(v.encode())
	v.flags = 0
	f.Add(append(v.encode(), 1, 2, 3))
	f.Add(recordFields{stream: "s", typ: "t", id: "i", data: []byte("{}"), pos: 1, ver: 1}.encode())
	f.Add(recordFields{stream: "a-b", typ: "T", id: "x", data: []byte(`"é"`), meta: []byte("{}"),
		pos: 9, ver: 3, prev: 8, time: -5, flags: FlagTombstone | FlagEndOfBatch}.encode())
	f.Add(make([]byte, RecordHeaderSize))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkReencodes(t, b)
		// Random bytes almost never pass the checksum; reseal a copy so the
		// fuzzer also reaches the field checks behind it.
		if len(b) >= RecordHeaderSize {
			if n := RecordLength(b); n >= 8 && n <= len(b) {
				checkReencodes(t, reseal(append([]byte(nil), b...)))
			}
		}
	})
}

func checkReencodes(t *testing.T, b []byte) {
	t.Helper()
	r, err := DecodeRecord(b)
	if err != nil {
		if !errors.Is(err, ErrShortRecord) && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrBadRecord) {
			t.Fatalf("error without a sentinel: %v", err)
		}
		return
	}
	if r.Size < RecordHeaderSize || r.Size > MaxRecordSize || r.Size > len(b) {
		t.Fatalf("size %d of %d bytes", r.Size, len(b))
	}
	if r.Position == 0 || r.Version == 0 || r.Prev >= r.Position {
		t.Fatalf("accepted %+v", r)
	}
	if r.Metadata != nil && len(r.Metadata) == 0 {
		t.Fatalf("empty non-nil metadata")
	}
	out := AppendRecord(nil, string(r.Stream), string(r.Type), string(r.ID), r.Data, r.Metadata)
	if len(out) != r.Size {
		t.Fatalf("re-encoded %d bytes, decoded %d", len(out), r.Size)
	}
	PatchRecord(out, r.Position, r.Version, r.Prev, r.Time, r.Flags)
	if !bytes.Equal(out, b[:r.Size]) {
		t.Fatalf("re-encoding differs:\n got %x\nwant %x", out, b[:r.Size])
	}
}

func benchRecord() recordFields {
	f := validFields()
	f.meta = nil
	f.data = []byte(`{"pad":"` + strings.Repeat("x", 250-RecordHeaderSize-len(f.stream)-len(f.typ)-len(f.id)-10) + `"}`)
	return f
}

func BenchmarkDecodeRecord(b *testing.B) {
	rec := benchRecord().encode()
	if len(rec) != 250 {
		b.Fatalf("record of %d bytes, want 250", len(rec))
	}
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPatchRecord(b *testing.B) {
	f := benchRecord()
	size := RecordSize(f.stream, f.typ, f.id, f.data, f.meta)
	if size != 250 {
		b.Fatalf("record of %d bytes, want 250", size)
	}
	buf := make([]byte, 0, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecord(buf[:0], f.stream, f.typ, f.id, f.data, f.meta)
		PatchRecord(buf, f.pos, f.ver, f.prev, f.time, f.flags)
	}
}
