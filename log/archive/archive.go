// Package archive is the format of retention archives: the events a
// retention rule with an archive directory removes are written there, by
// the compaction that reclaims them, as gzip-compressed NDJSON envelopes
// (what evt export prints), which evt import restores.
//
// One compaction writes at most one file per directory, named by the
// positions of its first and last event, zero-padded so that a listing
// sorts by position:
//
//	00000000000000000001-00000000000000000420.ndjson.gz
//
// gzip from the standard library rather than zstd: zstd
// (github.com/klauspost/compress) makes files about half the size and
// compresses faster (testdata/bench/archivecompare: 4.8% against 8.8% of
// the envelopes, 90 against 65 MB/s), but linking it costs every evt
// process 0.16-0.18 ms of package initialisation (GODEBUG=inittrace=1),
// most of what `evt append` has left to spend; compress/flate costs
// 0.009 ms. Archives are written in the background by compaction, so the
// slower codec costs nobody a wait.
package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Ext ends the name of every complete archive file.
const Ext = ".ndjson.gz"

// TempPrefix starts the name of an archive file being written; a
// compaction removes such leftovers of one that was killed.
const TempPrefix = ".evt-archive-"

// Name is the file name of an archive of the events from position lo to
// hi.
func Name(lo, hi uint64) string {
	return fmt.Sprintf("%020d-%020d%s", lo, hi, Ext)
}

// ParseName reads the positions of the first and last event from an
// archive file's name; ok is false for any other name.
func ParseName(name string) (lo, hi uint64, ok bool) {
	rest, found := strings.CutSuffix(name, Ext)
	if !found || len(rest) != 41 || rest[20] != '-' {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(rest[:20], 10, 64)
	hi, err2 := strconv.ParseUint(rest[21:], 10, 64)
	if err1 != nil || err2 != nil || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// NewWriter compresses what is written to w. Close flushes it (and does
// not close w).
func NewWriter(w io.Writer) (io.WriteCloser, error) {
	return gzip.NewWriterLevel(w, gzip.DefaultCompression)
}

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// IsCompressed reports whether head, the first bytes of an input, starts
// with the magic bytes of gzip or zstd (which Decompress refuses with a
// message saying what to do).
func IsCompressed(head []byte) bool {
	return bytes.HasPrefix(head, zstdMagic) || bytes.HasPrefix(head, gzipMagic)
}

// ErrZstd is Decompress's refusal of zstd input: evt does not link a zstd
// decoder (see the package comment), the zstd command has one.
var ErrZstd = errors.New("the input is zstd-compressed: decompress it first (zstd -dc FILE | evt import)")

// Decompress returns r's content decompressed when it starts with the
// magic bytes of gzip, and r as it is otherwise (plain NDJSON); zstd is
// ErrZstd. compressed says which; close releases the decoder.
func Decompress(r io.Reader) (out io.Reader, compressed bool, close func(), err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, zstdMagic):
		return nil, false, nil, ErrZstd
	case bytes.HasPrefix(head, gzipMagic):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, false, nil, fmt.Errorf("read gzip: %w", err)
		}
		return gzipReader{z}, true, func() { z.Close() }, nil
	}
	return br, false, func() {}, nil
}

// gzipReader says which format a damaged input was in.
type gzipReader struct{ z *gzip.Reader }

func (g gzipReader) Read(b []byte) (int, error) {
	n, err := g.z.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read gzip: %w", err)
	}
	return n, err
}
