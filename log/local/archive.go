package local

import (
	"context"
	"unsafe"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log/archive"
)

// Archives: a retention rule with an archive directory (log.Rule.Archive)
// makes compaction write what it is about to reclaim of the rule's
// streams to that directory first, as one compressed file of envelopes
// per compaction and directory (log/archive, whose Writer says how a
// crash between the archive and the reclaim archives nothing twice and
// loses nothing), complete and synced before the first segment is
// touched.

// archiveDir is the archive directory of the rule that archives rec, or
// "" when rec is not to be archived: a marker, an event a cut removed
// (delete and truncate remove on purpose), or one no archive rule's
// selection matches. Called only for records compaction drops.
func (v *view) archiveDir(rec *codec.Record) string {
	if rec.Marker() || len(rec.Stream) == 0 {
		return ""
	}
	name := unsafe.String(&rec.Stream[0], len(rec.Stream))
	if _, cutOff := v.head(name, rec); cutOff {
		return ""
	}
	matches := v.matching(name)
	for i := range v.rules {
		r := &v.rules[i]
		if r.archive == "" || i < 64 && matches&(1<<i) == 0 || i >= 64 && !r.sel.Match(name) {
			continue
		}
		return r.archive
	}
	return ""
}

// archiveRemoved archives what compaction will drop from the sealed
// segments (the same decision as compactSegment's: !keeps) of streams
// an archive rule matches. It returns once every archive file is synced;
// an error, or ctx done, leaves no new archive file and nothing
// reclaimed.
func (s *Store) archiveRemoved(ctx context.Context, c *commitState, v *view, h *hashFile, sealed []uint64) error {
	if len(sealed) == 0 || !v.archives() {
		return nil
	}
	archives := archive.NewSet(s.fsys, sealed[0])
	defer archives.Abort()
	n := 0
	for _, first := range sealed {
		sf, err := s.segment(first)
		if err != nil {
			return err
		}
		lim, err := s.limit(sf, c)
		if err != nil {
			return err
		}
		sc := newRecordScanner(sf.f, segmentName(first), segmentHeaderSize, lim, s.scanBuf)
		for sc.Next() {
			if n++; n%16384 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			rec := sc.Record()
			if rec.Marker() || s.keeps(rec, v, h) {
				continue
			}
			dir := v.archiveDir(rec)
			if dir == "" {
				continue
			}
			if err := archives.Add(dir, rec); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
		s.scanBuf = sc.buf
	}
	return archives.Finish()
}

// archives reports whether any rule has an archive directory.
func (v *view) archives() bool {
	for i := range v.rules {
		if v.rules[i].archive != "" {
			return true
		}
	}
	return false
}
