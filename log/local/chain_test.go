package local

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

func TestHashChainDetectsTampering(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, 4096)
	for i := 0; i < 120; i++ {
		appendN(t, s, "a-1", 3)
	}
	head, added, err := s.VerifyChain()
	if err != nil || added == 0 || len(head) != 64 {
		t.Fatalf("first chain: %q, %d added, %v", head, added, err)
	}
	if again, n, err := s.VerifyChain(); err != nil || n != 0 || again != head {
		t.Fatalf("second chain: %q, %d added, %v; want %q", again, n, err, head)
	}

	// Change one byte of an event in the oldest segment and reseal its
	// checksum: the log still verifies, the chain does not.
	seg := filepath.Join(dir, segmentName(1))
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b := bytes.Clone(orig)
	rec := b[segmentHeaderSize:]
	n := codec.RecordLength(rec)
	i := bytes.LastIndex(rec[:n], []byte(`"i":`))
	rec[i+4] = '9'
	binary.LittleEndian.PutUint32(rec[4:], codec.Checksum(rec[8:n]))
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir, 4096)
	if _, err := s.Verify(context.Background(), nil); err != nil {
		t.Fatalf("verify of a resealed record: %v", err)
	}
	if _, _, err := s.VerifyChain(); err == nil || !strings.Contains(err.Error(), "changed outside evt") {
		t.Fatalf("chain over a tampered segment: %v", err)
	}
	if err := os.WriteFile(seg, orig, 0o600); err != nil {
		t.Fatal(err)
	}

	// A line of the chain file changed: caught.
	chain := filepath.Join(dir, chainFile)
	lines, _ := os.ReadFile(chain)
	forged := bytes.Replace(lines, []byte(" 0 "), []byte(" 1 "), 1)
	os.WriteFile(chain, forged, 0o600)
	if _, _, err := s.VerifyChain(); err == nil {
		t.Fatal("a forged chain line passed")
	}
	os.WriteFile(chain, lines, 0o600)

	// Compaction rewrites sealed segments and updates the chain.
	if _, err := s.Delete(context.Background(), "a-1", log.Expectation{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	after, _, err := s.VerifyChain()
	if err != nil || after == head {
		t.Fatalf("chain after compaction: %q, %v (head before %q)", after, err, head)
	}
}

func FuzzParseChain(f *testing.F) {
	l := chainLink{first: 1, gen: 2, size: 3, digest: strings.Repeat("ab", 32)}
	l.chain = chainNext(zeroChain, l)
	f.Add([]byte(l.body() + " " + l.chain + "\n"))
	f.Add([]byte("1 0 64 " + zeroChain + " " + zeroChain))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		links, err := parseChain(b)
		if err != nil {
			return
		}
		var out strings.Builder
		for _, l := range links {
			out.WriteString(l.body() + " " + l.chain + "\n")
		}
		again, err := parseChain([]byte(out.String()))
		if err != nil || len(again) != len(links) {
			t.Fatalf("re-encoded chain does not parse the same: %v", err)
		}
		for i := range links {
			if again[i] != links[i] {
				t.Fatalf("line %d: %+v, then %+v", i, links[i], again[i])
			}
		}
	})
}
