package local

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/evtdev/evt/log"
)

type streamState struct {
	key           hashKey
	name          string
	version, last uint64
	cut           uint64 // the heads table's cut value (see cutValue)
	dirty         bool   // an event or marker of it was written in this batch
	created       bool   // its first event is in this batch
	checked       bool   // its expectation held
}

// Append stores the batch atomically and durably (per the sync policy)
// and returns one result per event, in order.
//
// An event whose id the stream already holds (from an earlier call or
// earlier in this batch) is not written again; its result reports the
// original with Duplicate set. A stream's expectation is checked against
// its version before the batch, at its first event that is written: a
// stream whose events in the batch are all such duplicates is a retry
// that already succeeded, and is not checked. Any failed expectation
// fails the whole batch with ErrConflict and writes nothing.
//
// ctx cancels the append until its commit point (see Appender), the wait
// for the append lock included, which Options.LockTimeout bounds too.
func (s *Store) Append(ctx context.Context, b *log.Batch) ([]log.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.Len() == 0 && len(b.Expectations()) == 0 {
		return nil, nil
	}
	a, err := s.beginAppend(ctx, b.Expectations(), log.Expectation{})
	if err != nil {
		return nil, err
	}
	a.cond = b.Condition()
	if err := a.Add(b); err != nil {
		a.Abort()
		return nil, err
	}
	return a.Commit()
}

// prevOf reads the prev field of an encoded record (see codec/record.go).
func prevOf(rec []byte) uint64 { return binary.LittleEndian.Uint64(rec[24:]) }

// roll seals the active segment and starts a new one at c.next. Sealing
// is the checkpoint recovery after a reboot relies on: the segment, its
// offsets and the tables are synced before the next segment exists.
func (s *Store) roll(c *commitState, now int64) error {
	sf, err := s.segment(c.active)
	if err != nil {
		return err
	}
	if err := sf.f.Datasync(); err != nil {
		s.failed = err
		return fmt.Errorf("sync %s: %w", segmentName(sf.first), err)
	}
	if sf.idx != nil {
		if err := sf.idx.Sync(); err != nil {
			return err
		}
	}
	if err := s.heads.sync(); err != nil {
		return err
	}
	if err := s.ids.sync(); err != nil {
		return err
	}
	// The sealed segment's ids leave the table for a run (idindex.go).
	if err := s.flushIDs(c.next); err != nil {
		return err
	}
	if err := s.syncNames(); err != nil {
		return err
	}
	// A writer killed between creating a segment and publishing it leaves
	// a file named inside the active segment's range; once the log rolls
	// past it, it would shadow real positions. Remove such orphans first.
	firsts, err := listSegments(s.fsys, s.dir)
	if err != nil {
		return err
	}
	for _, f := range firsts {
		// (active, next]: next itself can only be an orphan here, as
		// prepare adopts a segment at next that holds published data.
		if f > c.active && f <= c.next {
			if err := s.fsys.Remove(join(s.dir, segmentName(f))); err != nil {
				return err
			}
			s.fsys.Remove(join(s.dir, offsetsName(f)))
		}
	}
	if err := createSegment(s.fsys, s.dir, c.next, now); err != nil {
		return err
	}
	c.active, c.size, c.lastSync = c.next, segmentHeaderSize, now
	s.firsts = nil
	s.sealed = true
	return nil
}
