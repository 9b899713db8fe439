package natsjs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/archive"
	"github.com/evtdev/evt/log/local/vfs"
)

var _ log.Compacter = (*Store)(nil)

// Compaction on a nats store is the retention sweep: retention is a view
// (reads skip what max-age and max-count remove), and Compact purges
// what the view hides from the server. Delete and truncate purge at
// once, so only retention leaves anything to reclaim.
//
// For each stream a rule limits, the events a read no longer yields form
// a prefix of its subject (times never decrease along the log, versions
// increase), so one purge by subject below the first event a read still
// yields removes them. The subject's last message is never purged: it is
// the stream's head, whose headers carry its version and cut, so no
// stream ever restarts at version 1. Markers of deletes and truncates
// inside that prefix go with it: every later message carries the cut.
//
// What a rule with an archive directory removes is written there first
// (log/archive), complete and synced before the first purge: a crash
// between the two leaves the events on the server and in the archive,
// and the next compaction, whose archive.Writer skips what an archive
// file already holds, archives nothing twice and loses nothing.
//
// Until-acked rules are not applied by a nats store (reads do not hide
// acked events), so compaction leaves their streams alone.

// compactHooks are what tests put between the steps of a compaction.
type compactHooks struct {
	// fsys writes archives (vfs.OS when nil).
	fsys vfs.FS
	// beforePurge runs before the i-th purge (from 0); an error stops
	// the compaction there, as a crash would.
	beforePurge func(i int) error
}

// sweepStream is what the sweep found of one stream.
type sweepStream struct {
	h       head
	l       limits
	archive string // the archive directory of its first rule that has one
	removed bool   // messages below below are hidden from every read
	below   uint64 // purge the subject's messages before this position
	done    bool   // below is final: a message a read yields, or the head
}

// Compact purges what retention hides (log.Compacter). The report has no
// segments (Segments, Rewritten and Removed are -1); Dropped counts the
// messages purged, markers included, and the bytes are the stream's
// before and after.
func (s *Store) Compact(ctx context.Context, progress log.Progress) (log.CompactReport, error) {
	rep := log.CompactReport{Segments: -1, Rewritten: -1, Removed: -1}
	rctx, cancel := s.ctx()
	defer cancel()
	r, err := s.retention(rctx)
	if err != nil {
		return rep, err
	}
	st, err := s.state(rctx)
	if err != nil {
		return rep, s.wrap("compact", err)
	}
	rep.BytesBefore, rep.BytesAfter = int64(st.Bytes), int64(st.Bytes)
	if !limiting(r) || st.Msgs == 0 {
		return rep, nil
	}
	heads := map[string]head{}
	if err := s.eachHead(rctx, func(stream string, h head) { heads[stream] = h }); err != nil {
		return rep, s.wrap("compact", err)
	}
	cancel()

	var hiddenEvents []entry
	streams, err := s.sweep(ctx, r, heads, st, progress, &hiddenEvents)
	if err != nil {
		return rep, err
	}
	// The groups count what they will never get before it is gone.
	gctx, gcancel := context.WithTimeout(ctx, 4*s.opts.Timeout)
	err = s.noteCompacted(gctx, hiddenEvents, st.Last)
	gcancel()
	if err != nil {
		return rep, s.wrap("compact: count the groups' skipped events", err)
	}
	names := make([]string, 0, len(streams))
	for name, ss := range streams {
		if ss.removed {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if s.hooks.beforePurge != nil {
			if err := s.hooks.beforePurge(i); err != nil {
				return rep, err
			}
		}
		pctx, cancel := s.ctx()
		n, err := s.purgeCount(pctx, s.subjectOf(name), streams[name].below)
		cancel()
		if err != nil {
			return rep, s.wrap("compact: purge what retention removed of "+name, err)
		}
		rep.Dropped += n
	}
	rctx, cancel = s.ctx()
	defer cancel()
	if st, err = s.state(rctx); err != nil {
		return rep, s.wrap("compact", err)
	}
	rep.BytesAfter = int64(st.Bytes)
	return rep, nil
}

// limiting reports whether a rule has a limit the sweep applies.
func limiting(r log.Retention) bool {
	for _, rule := range r.Rules {
		if rule.MaxAge > 0 || rule.MaxCount > 0 {
			return true
		}
	}
	return false
}

// archiveOf is the archive directory of the first rule (in the policy's
// order, as the local store's) that matches stream and has one.
func archiveOf(r log.Retention, stream string) string {
	for _, rule := range r.Rules {
		if rule.Archive == "" {
			continue
		}
		if sel, err := codec.ParseSelection(rule.Selection); err == nil && sel.Match(stream) {
			return rule.Archive
		}
	}
	return ""
}

// sweep reads the log once, from its first message to its last when the
// sweep began, and finds for each limited stream where the messages a
// read still yields begin; it archives the events it passes on the way
// that an archive rule covers, and returns once every archive file is
// synced; hiddenEvents gets every event retention hides (without data).
// An error leaves no new archive file.
func (s *Store) sweep(ctx context.Context, r log.Retention, heads map[string]head, st streamState, progress log.Progress, hiddenEvents *[]entry) (map[string]*sweepStream, error) {
	now := time.Now()
	streams := map[string]*sweepStream{}
	fsys := s.hooks.fsys
	if fsys == nil {
		fsys = vfs.OS
	}
	archives := archive.NewSet(fsys, st.First)
	defer archives.Abort()
	withData := false
	for _, rule := range r.Rules {
		withData = withData || rule.Archive != ""
	}
	var rec codec.Record
	err := s.scanRange(ctx, s.root+".>", st.First, st.Last, !withData, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		seq := meta.Sequence.Stream
		if progress != nil && seq%4096 == 0 {
			progress(int64(seq-st.First), int64(st.Last-st.First+1))
		}
		e, ok := s.decode(m.Subject(), seq, m.Headers(), m.Data(), meta.Timestamp)
		if !ok {
			return true, nil // not evt's: verify reports it, compaction leaves it
		}
		ss := streams[e.stream]
		if ss == nil {
			h, known := heads[e.stream]
			ss = &sweepStream{h: h, l: limitsOf(r, e.stream), archive: archiveOf(r, e.stream)}
			// Nothing to do for a stream no limit covers, one whose
			// head came after the heads were read, or one deleted or
			// cut whole: its cut purged it already.
			ss.done = !known || (ss.l.maxAge == 0 && ss.l.maxCount == 0) || !h.present()
			streams[e.stream] = ss
		}
		if ss.done {
			return true, nil
		}
		event := e.mark == "" && e.version > ss.h.cut // not a marker, not cut on purpose
		gone := event && hidden(&e, ss.h, ss.l, now)
		if gone {
			// Groups count it (noteCompacted), also a stream's newest
			// event, which stays on the server hidden.
			he := e
			he.data, he.meta = nil, nil
			*hiddenEvents = append(*hiddenEvents, he)
		}
		if seq >= ss.h.seq || event && !gone {
			ss.below, ss.done = seq, true
			return true, nil
		}
		ss.removed, ss.below = true, seq+1
		if !gone || ss.archive == "" {
			return true, nil
		}
		e.record(&rec)
		return true, archives.Add(ss.archive, &rec)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := archives.Finish(); err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	return streams, nil
}

// hidden reports whether a read no longer yields event e of a stream
// whose head is h under limits l: older than max-age, or not among the
// newest max-count (the reader's test, selected).
func hidden(e *entry, h head, l limits, now time.Time) bool {
	if l.maxAge > 0 && e.time < now.Add(-l.maxAge).UnixNano() {
		return true
	}
	return l.maxCount > 0 && h.version >= l.maxCount && e.version <= h.version-l.maxCount
}
