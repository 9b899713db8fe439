package local

import (
	"context"
	"fmt"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// Delete removes every event of stream by appending a delete marker (a
// tombstone): from then on the stream reads as not found, its events are
// dropped from every read at once and from disk by the next compaction.
// Its versions are not given again: an append with --expect none fails,
// and a plain append continues after the deleted version. The result's
// Version is the last version deleted. e is checked against the stream's
// version, like an append's expectation.
func (s *Store) Delete(ctx context.Context, stream string, e log.Expectation) (log.Result, error) {
	return s.cut(ctx, stream, codec.FlagTombstone, 0, e)
}

// Truncate removes the events of stream before version before (a
// truncate marker): reads start at that version at once, and the next
// compaction reclaims the space. Truncating below an earlier cut changes
// nothing. The result's Version is the stream's cut afterwards.
func (s *Store) Truncate(ctx context.Context, stream string, before uint64, e log.Expectation) (log.Result, error) {
	if before == 0 {
		return log.Result{}, fmt.Errorf("truncate %s before version 0: versions start at 1", stream)
	}
	return s.cut(ctx, stream, codec.FlagTruncate, before-1, e)
}

func (s *Store) cut(ctx context.Context, stream string, flag uint16, cut uint64, e log.Expectation) (log.Result, error) {
	if err := codec.ValidateStream(stream); err != nil {
		return log.Result{}, err
	}
	a, err := s.beginAppend(ctx, map[string]log.Expectation{stream: e}, log.Expectation{})
	if err != nil {
		return log.Result{}, err
	}
	st := a.state(stream)
	old, deleted := splitCut(st.cut)
	switch {
	case st.version == 0:
		a.Abort()
		return log.Result{}, fmt.Errorf("%w: stream %s", log.ErrNotFound, stream)
	case deleted && old >= st.version:
		a.Abort()
		return log.Result{}, fmt.Errorf("%w: stream %s (deleted at version %d)", log.ErrNotFound, stream, old)
	case flag == codec.FlagTombstone:
		cut = st.version
	case cut > st.version:
		a.Abort()
		return log.Result{}, fmt.Errorf("truncate %s before version %d: the stream is at version %d (truncate before %d removes every event)", stream, cut+1, st.version, st.version+1)
	case cut <= old:
		// Already cut there; still check the expectation, like an append.
		if !e.Holds(st.version) {
			a.Abort()
			return log.Result{}, fmt.Errorf("%w: stream %s is at version %d, expected %s", log.ErrConflict, stream, st.version, e)
		}
		a.Abort()
		return log.Result{Stream: stream, Version: old, Duplicate: true}, nil
	}
	var b log.Batch
	if err := b.AddMarker(stream, flag, cut); err != nil {
		a.Abort()
		return log.Result{}, err
	}
	if err := a.Add(&b); err != nil {
		a.Abort()
		return log.Result{}, err
	}
	res, err := a.Commit()
	if err != nil {
		return log.Result{}, err
	}
	return res[0], nil
}
