package natsjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/log"
)

var _ log.Verifier = (*Store)(nil)

// Verify reads the whole stream and checks what the server cannot know
// of evt's layout (log.Verifier): every message is evt's, each stream's
// versions go up by one from event to event, a marker records the version
// its stream is at, and no atomic batch ends past the log's end. The
// server checks its own files; there are no segments (Report.Segments is
// 0) and progress counts positions.
func (s *Store) Verify(ctx context.Context, progress log.Progress) (log.Report, error) {
	var rep log.Report
	rctx, cancel := s.ctx()
	st, err := s.state(rctx)
	cancel()
	if err != nil {
		return rep, s.wrap("verify", err)
	}
	rep.Bytes = int64(st.Bytes)
	type streamSeen struct {
		version uint64 // last version of an event or marker seen, 0 before any
		present bool   // has an event after its last cut
	}
	seen := map[string]*streamSeen{}
	bad := func(seq uint64, format string, args ...any) error {
		return fmt.Errorf("%w: nats stream %s, position %d: %s", log.ErrCorrupt, s.name, seq, fmt.Sprintf(format, args...))
	}
	err = s.scanRange(ctx, s.root+".>", st.First, st.Last, true, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		seq := meta.Sequence.Stream
		e, ok := s.decode(m.Subject(), seq, m.Headers(), nil, meta.Timestamp)
		if !ok {
			return false, bad(seq, "message on %s was not written by evt", m.Subject())
		}
		if e.batchEnd > st.Last {
			return false, bad(seq, "its atomic batch ends at %d, past the log's end %d", e.batchEnd, st.Last)
		}
		x := seen[e.stream]
		if x == nil {
			x = &streamSeen{}
			seen[e.stream] = x
		}
		switch {
		case e.mark != "":
			if x.version != 0 && e.version != x.version {
				return false, bad(seq, "the %s marker of %s records version %d, the stream is at %d", e.mark, e.stream, e.version, x.version)
			}
			if e.cut > e.version {
				return false, bad(seq, "the %s marker of %s cuts through version %d, past its version %d", e.mark, e.stream, e.cut, e.version)
			}
			x.version = e.version
			x.present = e.mark == markTruncate && e.cut < e.version && x.present
		default:
			// The first event seen of a stream may follow purged ones.
			if x.version != 0 && e.version != x.version+1 {
				return false, bad(seq, "event of %s at version %d after version %d", e.stream, e.version, x.version)
			}
			if e.version <= e.cut {
				return false, bad(seq, "event of %s at version %d is at or below its cut %d", e.stream, e.version, e.cut)
			}
			x.version = e.version
			x.present = true
			rep.Events++
		}
		if progress != nil && st.Last > 0 {
			progress(int64(seq), int64(st.Last))
		}
		return true, nil
	})
	if err != nil {
		if errors.Is(err, log.ErrCorrupt) {
			return rep, err
		}
		return rep, s.wrap("verify", err)
	}
	for _, x := range seen {
		if x.present {
			rep.Streams++
		}
	}
	return rep, nil
}
