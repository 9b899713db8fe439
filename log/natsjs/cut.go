package natsjs

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/evtdev/evt/log"
)

// Delete cuts every event of stream off (log.Store): a marker message
// (Evt-Mark: delete) records the cut and stays the stream's head, so its
// version goes on; then the subject's messages before the marker are
// purged.
func (s *Store) Delete(ctx context.Context, stream string, e log.Expectation) (log.Result, error) {
	return s.cut(ctx, stream, markDelete, 0, e)
}

// Truncate cuts the events of stream before version before off
// (log.Store): a marker (Evt-Mark: truncate) records the cut, then the
// subject's messages before the first kept event are purged.
func (s *Store) Truncate(ctx context.Context, stream string, before uint64, e log.Expectation) (log.Result, error) {
	return s.cut(ctx, stream, markTruncate, before, e)
}

func (s *Store) cut(parent context.Context, stream, mark string, before uint64, e log.Expectation) (log.Result, error) {
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(parent, s.opts.Timeout)
		res, retry, err := s.cutOnce(ctx, stream, mark, before, e)
		cancel()
		if parent.Err() != nil {
			return log.Result{}, parent.Err()
		}
		if !retry || attempt >= maxAttempts {
			return res, err
		}
	}
}

func (s *Store) cutOnce(ctx context.Context, stream, mark string, before uint64, e log.Expectation) (log.Result, bool, error) {
	h, err := s.head(ctx, stream)
	if err != nil {
		return log.Result{}, false, err
	}
	// As the local store: a stream never appended to, or deleted, is not
	// found; one truncated to nothing may still be cut.
	switch {
	case h.seq == 0:
		return log.Result{}, false, fmt.Errorf("%w: stream %s", log.ErrNotFound, stream)
	case h.deleted:
		return log.Result{}, false, fmt.Errorf("%w: stream %s (deleted at version %d)", log.ErrNotFound, stream, h.version)
	}
	cut := h.version
	if mark == markTruncate {
		if before == 0 {
			return log.Result{}, false, fmt.Errorf("truncate %s before version 0: versions start at 1", stream)
		}
		cut = before - 1
		if cut > h.version {
			return log.Result{}, false, fmt.Errorf("truncate %s before version %d: the stream is at version %d (truncate before %d removes every event)", stream, before, h.version, h.version+1)
		}
	}
	if !e.Holds(h.version) {
		return log.Result{}, false, fmt.Errorf("%w: stream %s is at version %d, expected %s", log.ErrConflict, stream, h.version, e)
	}
	if mark == markTruncate && cut <= h.cut {
		// Already cut there: nothing changes.
		return log.Result{Stream: stream, Version: h.cut, Duplicate: true}, false, nil
	}
	hdr := nats.Header{}
	hdr.Set(hdrVersion, u64(h.version))
	hdr.Set(hdrType, "$"+mark)
	hdr.Set(hdrID, nuid.Next())
	hdr.Set(hdrMark, mark)
	hdr.Set(hdrCut, u64(cut))
	hdr.Set(hdrLast, u64(h.last))
	hdr.Set(hdrLastType, h.lastType)
	hdr.Set(hdrLastTime, strconv.FormatInt(h.lastTime, 10))
	hdr.Set(hdrDataLen, "2")
	hdr.Set(hdrExpSubjSeq, u64(h.seq))
	subject := s.subjectOf(stream)
	ack, err := s.publish(ctx, &nats.Msg{Subject: subject, Header: hdr, Data: payload([]byte("{}"), nil)})
	if c := errCode(err); c == errWrongLastSeq || c == errWrongLastSeqBusy {
		return log.Result{}, true, err // another writer got in first: look again
	}
	if err != nil {
		return log.Result{}, false, s.wrap(mark+" "+stream, err)
	}
	// The result's version is the last one cut off, as the local store's.
	res := log.Result{Position: ack.Seq, Stream: stream, Version: cut}
	if m, err := s.getMsg(ctx, msgGetRequest{Seq: ack.Seq}); err == nil && m != nil {
		res.Time = m.Time.UTC()
	}
	// Purge what the marker cut off. Readers of one stream skip events
	// at or below the cut anyway; the purge is what frees the space and
	// hides them from reads of many streams.
	keep := ack.Seq
	if cut < h.version {
		if keep, err = s.seqOfVersion(ctx, subject, cut+1, ack.Seq); err != nil {
			return res, false, err
		}
	}
	if err := s.purge(ctx, subject, keep); err != nil {
		return res, false, s.wrap("purge the events "+mark+" cut off "+stream, err)
	}
	return res, false, nil
}

// seqOfVersion finds the position of an event of subject by its version,
// scanning the subject's headers (truncate is rare; a stream is short
// next to the log).
func (s *Store) seqOfVersion(ctx context.Context, subject string, version, end uint64) (uint64, error) {
	found := end
	err := s.scanRange(ctx, subject, 1, end, true, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if m.Headers().Get(hdrMark) == "" && headerUint(m.Headers(), hdrVersion) >= version {
			found = meta.Sequence.Stream
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return 0, s.wrap("find version "+u64(version), err)
	}
	return found, nil
}
