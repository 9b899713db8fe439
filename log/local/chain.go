package local

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/atomicfile"
	"github.com/evtdev/evt/log/local/vfs"
)

// The hash chain makes tampering with a sealed segment detectable. The
// file DIR/chain has one line per sealed segment, oldest first:
//
//	FIRST GEN SIZE SHA256-OF-THE-FILE CHAIN
//
// where CHAIN is the SHA-256 of the previous line's CHAIN (64 zeros for
// the first) and of "FIRST GEN SIZE SHA256". `evt verify --chain` hashes
// every sealed segment, fails on any that differs from its line, adds
// lines for segments sealed since, and prints the last CHAIN: noted
// somewhere else (a ticket, another machine), it pins the whole history
// of the log, since no segment nor line can change without changing it.
// Compaction is the one legitimate rewrite of a sealed segment: it
// updates the lines of the segments it rewrites or removes, which changes
// the chain from there on.
//
// The chain is optional and costs appends nothing: it is built by verify,
// not by the writer that seals a segment.

const chainFile = "chain"

type chainLink struct {
	first  uint64
	gen    uint32
	size   int64
	digest string // hex SHA-256 of the segment file
	chain  string // hex
}

func (l chainLink) body() string {
	return fmt.Sprintf("%d %d %d %s", l.first, l.gen, l.size, l.digest)
}

func chainNext(prev string, l chainLink) string {
	h := sha256.New()
	io.WriteString(h, prev)
	io.WriteString(h, "\n")
	io.WriteString(h, l.body())
	return hex.EncodeToString(h.Sum(nil))
}

var zeroChain = strings.Repeat("0", 64)

// readChain reads DIR/chain; a missing file is an empty chain.
func (s *Store) readChain() ([]chainLink, error) {
	b, err := vfs.ReadFile(s.fsys, join(s.dir, chainFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseChain(b)
}

// parseChain decodes the lines of a chain file.
func parseChain(b []byte) ([]chainLink, error) {
	var links []chainLink
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		bad := &log.CorruptError{File: chainFile, Offset: -1, Reason: fmt.Sprintf("line %d is malformed", n)}
		if len(f) != 5 || !isHex64(f[3]) || !isHex64(f[4]) {
			return nil, bad
		}
		first, err1 := strconv.ParseUint(f[0], 10, 64)
		gen, err2 := strconv.ParseUint(f[1], 10, 32)
		size, err3 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, bad
		}
		links = append(links, chainLink{first: first, gen: uint32(gen), size: size, digest: f[3], chain: f[4]})
	}
	if err := sc.Err(); err != nil {
		return nil, &log.CorruptError{File: chainFile, Offset: -1, Reason: err.Error()}
	}
	return links, nil
}

// isHex64 reports whether s is a SHA-256 in lower-case hex.
func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Store) writeChain(links []chainLink) error {
	var b strings.Builder
	prev := zeroChain
	for i := range links {
		links[i].chain = chainNext(prev, links[i])
		prev = links[i].chain
		fmt.Fprintf(&b, "%s %s\n", links[i].body(), links[i].chain)
	}
	return atomicfile.WriteFS(s.fsys, join(s.dir, chainFile), []byte(b.String()), 0o600)
}

// hashSegment hashes a whole segment file and reads its generation.
func (s *Store) hashSegment(first uint64) (chainLink, error) {
	f, err := s.fsys.OpenFile(join(s.dir, segmentName(first)), os.O_RDONLY, 0)
	if err != nil {
		return chainLink{}, err
	}
	defer f.Close()
	gen, err := checkSegmentHeader(f, first)
	if err != nil {
		return chainLink{}, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return chainLink{}, err
	}
	return chainLink{first: first, gen: gen, size: n, digest: hex.EncodeToString(h.Sum(nil))}, nil
}

// VerifyChain checks every sealed segment against the hash chain, extends
// the chain with segments sealed since it was last run, and returns the
// chain's head and how many segments it added.
func (s *Store) VerifyChain() (head string, added int, err error) {
	// Under the compaction lock: compaction rewrites the chain file too.
	release, _ := s.holdCompaction(context.Background())
	defer release()
	return s.verifyChain()
}

func (s *Store) verifyChain() (head string, added int, err error) {
	links, err := s.readChain()
	if err != nil {
		return "", 0, err
	}
	// The recorded chain must be consistent in itself.
	prev := zeroChain
	for i, l := range links {
		if chainNext(prev, l) != l.chain {
			return "", 0, &log.CorruptError{File: chainFile, Offset: -1, Reason: fmt.Sprintf("line %d does not follow from the lines before it: the chain file was changed", i+1)}
		}
		prev = l.chain
	}
	c, err := s.committed()
	if err != nil {
		return "", 0, err
	}
	firsts, err := listSegments(s.fsys, s.dir)
	if err != nil {
		return "", 0, err
	}
	byFirst := map[uint64]int{}
	for i, l := range links {
		byFirst[l.first] = i
	}
	oldest := c.active
	if len(firsts) > 0 {
		oldest = firsts[0]
	}
	present := map[uint64]bool{}
	for _, first := range firsts {
		if first >= c.active {
			break
		}
		present[first] = true
		got, err := s.hashSegment(first)
		if err != nil {
			return "", 0, err
		}
		i, ok := byFirst[first]
		if !ok {
			links = append(links, got)
			added++
			continue
		}
		if want := links[i]; got.gen != want.gen || got.size != want.size || got.digest != want.digest {
			return "", 0, &log.CorruptError{File: segmentName(first), Offset: -1, Reason: fmt.Sprintf("sealed segment differs from its hash chain entry (generation %d, %d bytes, sha256 %s; recorded generation %d, %d bytes, sha256 %s): it was changed outside evt", got.gen, got.size, got.digest[:16], want.gen, want.size, want.digest[:16])}
		}
	}
	for _, l := range links {
		if !present[l.first] && l.first >= oldest {
			return "", 0, &log.CorruptError{File: segmentName(l.first), Offset: -1, Reason: "a sealed segment of the hash chain is missing"}
		}
	}
	if added > 0 {
		slices.SortFunc(links, func(a, b chainLink) int { return cmp.Compare(a.first, b.first) })
		if err := s.writeChain(links); err != nil {
			return "", 0, err
		}
	}
	if len(links) == 0 {
		head = zeroChain
	} else {
		head = links[len(links)-1].chain
	}
	return head, added, nil
}

// rechain updates the chain lines of the segments compaction rewrote or
// removed: those whose generation differs from their line (the lines of
// a compaction killed before it rechained included), and those gone from
// the start of the log. The caller holds the compaction lock.
func (s *Store) rechain() error {
	links, err := s.readChain()
	if err != nil || len(links) == 0 {
		return err
	}
	changed := false
	out := links[:0]
	for _, l := range links {
		gen, err := segmentGen(s.fsys, join(s.dir, segmentName(l.first)), l.first)
		if err == nil && gen == l.gen {
			out = append(out, l)
			continue
		}
		changed = true
		got, err := s.hashSegment(l.first)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed whole
		}
		if err != nil {
			return err
		}
		out = append(out, got)
	}
	if !changed {
		return nil
	}
	return s.writeChain(out)
}

// segmentGen reads the generation of a segment file.
func segmentGen(fsys vfs.FS, path string, first uint64) (uint32, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return checkSegmentHeader(f, first)
}
