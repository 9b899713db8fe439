package codec

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestChecksumSoftware checks the byte-wise table against hash/crc32 on
// inputs of every length up to a few blocks, and the switch between them.
func TestChecksumSoftware(t *testing.T) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 600)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for n := 0; n <= len(b); n++ {
		if got, want := softUpdate(0, b[:n]), crc32.Checksum(b[:n], tab); got != want {
			t.Fatalf("softUpdate(0, …) of %d bytes = %08x, want %08x", n, got, want)
		}
	}
	// The known answer of CRC-32C (RFC 3720, B.4): 32 bytes of zeros.
	if got := softUpdate(0, make([]byte, 32)); got != 0x8a9136aa {
		t.Fatalf("softUpdate(0, 32 zeros) = %08x, want 8a9136aa", got)
	}
	// In pieces (UpdateChecksum), the sum of the whole, on the byte loop
	// here and on hash/crc32 below.
	pieces := func() uint32 {
		sum := uint32(0)
		for at := 0; at < len(b); at += 97 {
			sum = UpdateChecksum(sum, b[at:min(at+97, len(b))])
		}
		return sum
	}
	if got, want := pieces(), crc32.Checksum(b, tab); got != want {
		t.Fatalf("UpdateChecksum in pieces (byte loop) = %08x, want %08x", got, want)
	}
	// Past softLimit bytes Checksum moves to hash/crc32 for good, with
	// the same sums before and after.
	before := Checksum(b)
	for !hardware.Load() {
		Checksum(b)
	}
	if after := Checksum(b); after != before {
		t.Fatalf("Checksum changed from %08x to %08x when it moved to hash/crc32", before, after)
	}
	if got, want := pieces(), crc32.Checksum(b, tab); got != want {
		t.Fatalf("UpdateChecksum in pieces (hash/crc32) = %08x, want %08x", got, want)
	}
}

// BenchmarkChecksum compares the two implementations on a record with
// 200 bytes of data; softLimit comes from the byte loop's speed.
func BenchmarkChecksum(b *testing.B) {
	rec := make([]byte, 300)
	b.Run("software", func(b *testing.B) {
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			softUpdate(0, rec)
		}
	})
	b.Run("hash-crc32", func(b *testing.B) {
		tab := castagnoliTable()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			crc32.Checksum(rec, tab)
		}
	})
}

// BenchmarkChecksumTable is the cost of the byte-wise table, which
// every process that checksums anything makes once.
func BenchmarkChecksumTable(b *testing.B) {
	for b.Loop() {
		makeSoftTable()
	}
}
