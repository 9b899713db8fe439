package codec

import (
	"hash/crc32"
	"sync"
	"sync/atomic"
)

// Checksum is CRC32C (Castagnoli), the checksum of every record and store
// file.
//
// It has two implementations because hash/crc32 takes 0.15 to 0.2 ms to
// make its Castagnoli table (it precomputes the tables of its SSE4.2
// path), a twentieth of a whole `evt append` process, which checksums
// about a kilobyte. So a process starts with a byte-at-a-time table that
// takes a few microseconds to make, and moves to hash/crc32 for good once
// it has checksummed softLimit bytes, past which the byte loop would have
// cost more than the table. Both give the same sums.
func Checksum(b []byte) uint32 { return UpdateChecksum(0, b) }

// UpdateChecksum returns the checksum of the bytes sum is the checksum of
// followed by b (as crc32.Update does), for a file checksummed a piece
// at a time; UpdateChecksum(0, b) is Checksum(b).
func UpdateChecksum(sum uint32, b []byte) uint32 {
	if hardware.Load() {
		return crc32.Update(sum, castagnoliTable(), b)
	}
	if softBytes.Add(int64(len(b))) > softLimit {
		hardware.Store(true)
		return crc32.Update(sum, castagnoliTable(), b)
	}
	return softUpdate(sum, b)
}

// softLimit is about as many bytes as the byte loop checksums (at about
// 6 ns a byte, BenchmarkChecksum) in the time hash/crc32 takes to make its
// table.
const softLimit = 32 << 10

var (
	hardware  atomic.Bool  // softLimit passed: hash/crc32 from now on
	softBytes atomic.Int64 // bytes checksummed by softUpdate so far

	castagnoliTable = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })
	softTable       = sync.OnceValue(makeSoftTable)
)

// makeSoftTable makes the byte-wise table of the reflected Castagnoli
// polynomial, as hash/crc32 does for its generic path.
func makeSoftTable() *[256]uint32 {
	var t [256]uint32
	for i := range t {
		c := uint32(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ crc32.Castagnoli
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return &t
}

func softUpdate(sum uint32, b []byte) uint32 {
	t := softTable()
	c := ^sum
	for _, v := range b {
		c = t[byte(c)^v] ^ c>>8
	}
	return ^c
}
