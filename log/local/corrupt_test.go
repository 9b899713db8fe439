package local

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// The corruption tests build a real store in a temporary directory (small
// segments, so there are several sealed ones), damage its files the way a
// crash, a lost write or bit rot would, and check what readers, the next
// writer, Verify and Repair make of it. The shape follows hashicorp/raft-wal
// TestRecovery: one named case per kind of damage.

const corruptSegSize = 4096

// fixture is a store built by buildStore, with what it holds.
type fixture struct {
	dir    string
	events []codec.Event // every committed event, in log order
	commit commitState   // the committed end
	segs   []uint64      // first positions of the segment files
	extra  int           // events added by appendSingles, for unique ids
	fixtureState
}

type corruptCase struct {
	name   string
	damage func(t *testing.T, fx *fixture)
	check  func(t *testing.T, fx *fixture)
}

func TestCorruption(t *testing.T) {
	cases := []corruptCase{
		// Torn and unfinished tails past the committed end.
		{"torn tail: garbage", tornTail(bytes.Repeat([]byte{0xA5, 0x3C, 0x00, 0x7F}, 100)), checkTornTail},
		{"torn tail: zeros", tornTail(make([]byte, 300)), checkTornTail},
		{"torn tail: a record cut short", func(t *testing.T, fx *fixture) {
			b, _ := fx.tailBatch(t, true)
			appendBytes(t, fx.activePath(), b[:30])
		}, checkTornTail},
		{"torn tail: a stale copy of the last record", func(t *testing.T, fx *fixture) {
			recs := segmentRecords(t, fx.dir, fx.commit.active)
			last := recs[len(recs)-1]
			seg := readFile(t, fx.activePath())
			appendBytes(t, fx.activePath(), seg[last.off:last.end])
		}, checkTornTail},
		{"partial batch past the committed end", func(t *testing.T, fx *fixture) {
			b, _ := fx.tailBatch(t, false)
			appendBytes(t, fx.activePath(), b)
		}, checkPartialBatch},
		{"complete batch past the committed end", func(t *testing.T, fx *fixture) {
			b, _ := fx.tailBatch(t, true)
			appendBytes(t, fx.activePath(), b)
		}, checkLostPublish},

		// Damage inside sealed segments: acknowledged events are gone.
		{"flipped bit in a sealed segment record", func(t *testing.T, fx *fixture) {
			r := fx.sealedRecord(t, 2)
			flipBit(t, join(fx.dir, segmentName(fx.segs[1])), r.end-3, 0x10)
		}, checkSealedDamage(false)},
		{"flipped bit in a sealed record's length", func(t *testing.T, fx *fixture) {
			r := fx.sealedRecord(t, 2)
			flipBit(t, join(fx.dir, segmentName(fx.segs[1])), r.off+1, 0x01)
		}, checkSealedDamage(false)},
		{"truncated sealed segment", func(t *testing.T, fx *fixture) {
			r := fx.sealedRecord(t, 2)
			truncate(t, join(fx.dir, segmentName(fx.segs[1])), r.off+10)
		}, checkSealedDamage(true)},
		{"deleted sealed segment", func(t *testing.T, fx *fixture) {
			remove(t, join(fx.dir, segmentName(fx.segs[1])))
		}, checkDeletedSegment},

		// Damage below the committed end of the active segment.
		{"active segment truncated below the committed end", truncateActive, checkActiveTruncated},
		{"append to an active segment truncated below the committed end", truncateActive, checkAppendAfterActiveTruncated},

		// The heads table, stale or gone.
		{"heads table: earlier copy (applied behind)", staleHeads(false), checkHeadsBehind},
		{"heads table: applied set back to 0", func(t *testing.T, fx *fixture) {
			putWord(t, join(fx.dir, headsFile), 40, 0)
		}, checkHeadsBehind},
		{"heads table: earlier copy claiming to be current", staleHeads(true), checkHeadsWrong},
		{"heads table: an entry removed", func(t *testing.T, fx *fixture) {
			removeHeadsEntry(t, fx.dir, "acct-2")
		}, checkHeadsWrong},
		{"heads table deleted, reader opens", func(t *testing.T, fx *fixture) {
			remove(t, join(fx.dir, headsFile))
		}, checkHeadsDeletedReader},
		{"heads table deleted, writer opens", func(t *testing.T, fx *fixture) {
			remove(t, join(fx.dir, headsFile))
		}, checkHeadsDeletedWriter},
		{"heads table with a garbage header", func(t *testing.T, fx *fixture) {
			flipBit(t, join(fx.dir, headsFile), 3, 0xff)
		}, checkHeadsGarbage},
		{"ids table deleted", func(t *testing.T, fx *fixture) {
			remove(t, join(fx.dir, idsFile))
		}, checkIDsDeleted},

		// The commit file.
		{"commit file: both slots garbage", func(t *testing.T, fx *fixture) {
			p := join(fx.dir, commitFile)
			writeFile(t, p, bytes.Repeat([]byte{0xDE, 0xAD, 0xBE, 0xEF}, len(readFile(t, p))/4))
		}, checkCommitLost},
		{"commit file: empty", func(t *testing.T, fx *fixture) {
			truncate(t, join(fx.dir, commitFile), 0)
		}, checkCommitLost},
		{"commit file deleted", func(t *testing.T, fx *fixture) {
			remove(t, join(fx.dir, commitFile))
		}, checkCommitDeleted},
		{"commit file: newest slot torn", func(t *testing.T, fx *fixture) {
			fx.appendSingles(t, false)
			tearCommitSlot(t, fx, true)
		}, checkNewestSlotTorn},
		{"commit file: newest slot torn, a reader's heads", func(t *testing.T, fx *fixture) {
			fx.appendSingles(t, false)
			tearCommitSlot(t, fx, true)
		}, checkNewestSlotTornReaderHeads},
		{"commit file: older slot torn", func(t *testing.T, fx *fixture) {
			tearCommitSlot(t, fx, false)
		}, checkOlderSlotTorn},
		{"commit file: newest slot torn, its publish rolled", func(t *testing.T, fx *fixture) {
			fx.appendSingles(t, true)
			tearCommitSlot(t, fx, true)
		}, checkNewestSlotTorn},

		// After a restart of the machine (a different boot id in the
		// commit file) the next writer, or a reader, rescans the active
		// segment.
		{"after a reboot: clean store", setBoot, checkRebootClean},
		{"after a reboot: a complete batch past the committed end", func(t *testing.T, fx *fixture) {
			b, _ := fx.tailBatch(t, true)
			appendBytes(t, fx.activePath(), b)
			setBoot(t, fx)
		}, checkRebootLostPublish},
		{"after a reboot: the publish of a roll lost", func(t *testing.T, fx *fixture) {
			fx.appendSingles(t, true)
			tearCommitSlot(t, fx, true)
			setBoot(t, fx)
		}, checkRebootClean},
		{"after a reboot: active segment truncated below the committed end", func(t *testing.T, fx *fixture) {
			truncateActive(t, fx)
			setBoot(t, fx)
		}, checkRebootActiveTruncated},

		// Offsets files.
		{"deleted .idx of a sealed segment", func(t *testing.T, fx *fixture) {
			remove(t, join(fx.dir, offsetsName(fx.segs[1])))
		}, checkOffsetsDamaged(1)},
		{"garbage .idx of a sealed segment", func(t *testing.T, fx *fixture) {
			p := join(fx.dir, offsetsName(fx.segs[1]))
			writeFile(t, p, bytes.Repeat([]byte{0xff}, len(readFile(t, p))))
		}, checkOffsetsDamaged(1)},
		{"deleted .idx of the active segment", func(t *testing.T, fx *fixture) {
			remove(t, join(fx.dir, offsetsName(fx.commit.active)))
		}, checkOffsetsDamaged(-1)},

		// A segment past the active one, as a writer killed while rolling
		// leaves it.
		{"orphan segment: empty file", orphanSegment(false), checkOrphan},
		{"orphan segment: header only", orphanSegment(true), checkOrphan},
		{"orphan segment: empty file, appends pass it, repair", orphanSegment(false), checkOrphanRepairLater},
		{"orphan segment: header only, appends pass it, repair", orphanSegment(true), checkOrphanRepairLater},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := buildStore(t)
			noPanic(t, func() { tc.damage(t, fx) })
			noPanic(t, func() { tc.check(t, fx) })
		})
	}
}

// --- checks ---------------------------------------------------------------

// checkTornTail: bytes past the committed end that are not a complete
// batch are invisible to readers and dropped by the next writer.
func checkTornTail(t *testing.T, fx *fixture) {
	r := openReader(t, fx.dir)
	sameEvents(t, "reader", mustReadAll(t, r), fx.events)
	rep, err := r.Verify(context.Background(), nil)
	if err != nil {
		t.Errorf("verify with a torn tail: %v", err)
	} else if !hasNote(rep, segmentName(fx.commit.active)) {
		t.Errorf("verify notes %q, want one about the uncommitted bytes of %s", rep.Notes, segmentName(fx.commit.active))
	}

	w := openWriter(t, fx.dir)
	res := appendEvent(t, w, "acct-0", "after-damage")
	if want := fx.next(); res.Position != want || res.Duplicate {
		t.Fatalf("append after a torn tail: %+v, want position %d", res, want)
	}
	verifyClean(t, w)
	sameEvents(t, "after append", mustReadAll(t, w), fx.events, res.event(t, w))
	// The bytes past the committed end are gone, not merely skipped.
	seg := readFile(t, join(fx.dir, segmentName(fx.commit.active)))
	if !bytes.Equal(seg[:fx.commit.size], fx.activeBytes) {
		t.Errorf("committed bytes of %s changed", segmentName(fx.commit.active))
	}
	if rest := seg[fx.commit.size:]; len(rest) > 0 {
		if _, err := codec.DecodeRecord(rest); err != nil {
			t.Errorf("%s still holds %d bytes that are not a record past the old end: %v", segmentName(fx.commit.active), len(rest), err)
		}
	}
}

// checkPartialBatch: a batch without its end-of-batch record was never
// acknowledged: dropped, its positions reused.
func checkPartialBatch(t *testing.T, fx *fixture) {
	r := openReader(t, fx.dir)
	sameEvents(t, "reader", mustReadAll(t, r), fx.events)
	if _, err := r.Head("ghost-1"); !errors.Is(err, log.ErrNotFound) {
		t.Errorf("reader Head(ghost-1) = %v, want ErrNotFound", err)
	}

	w := openWriter(t, fx.dir)
	res := appendEvent(t, w, "acct-1", "after-damage")
	if want := fx.next(); res.Position != want {
		t.Fatalf("append after a partial batch: position %d, want %d (the partial batch is dropped)", res.Position, want)
	}
	verifyClean(t, w)
	sameEvents(t, "after append", mustReadAll(t, w), fx.events, res.event(t, w))
	if _, err := w.Head("ghost-1"); !errors.Is(err, log.ErrNotFound) {
		t.Errorf("Head(ghost-1) = %v, want ErrNotFound", err)
	}
	checkHeads(t, w, append(slices.Clone(fx.events), res.event(t, w)))
}

// checkLostPublish: a whole batch past the committed end is what a writer
// killed (or a power loss) between its fdatasync and its publish leaves:
// the next writer adopts it.
func checkLostPublish(t *testing.T, fx *fixture) {
	_, batch := fx.tailBatch(t, true)
	r := openReader(t, fx.dir)
	sameEvents(t, "reader before recovery", mustReadAll(t, r), fx.events)

	w := openWriter(t, fx.dir)
	res := appendEvent(t, w, "acct-1", "after-damage")
	if want := fx.next() + uint64(len(batch)); res.Position != want {
		t.Fatalf("append after an unpublished batch: position %d, want %d (the batch adopted)", res.Position, want)
	}
	verifyClean(t, w)
	all := append(append(slices.Clone(fx.events), batch...), res.event(t, w))
	sameEvents(t, "after append", mustReadAll(t, w), all)
	checkHeads(t, w, all)
	info, err := w.Head("ghost-1")
	if want := fx.next() + uint64(len(batch)) - 1; err != nil || info.Version != 2 || info.Last != want {
		t.Errorf("Head(ghost-1) = %+v, %v; want version 2, last %d", info, err, want)
	}
	r2 := openReader(t, fx.dir)
	sameEvents(t, "fresh reader", mustReadAll(t, r2), all)
	checkHeads(t, r2, all)
}

// checkSealedDamage: damage inside a sealed segment is reported with its
// file and offset and is never read as events; Repair refuses and changes
// nothing, since repairing would drop acknowledged events.
func checkSealedDamage(truncated bool) func(t *testing.T, fx *fixture) {
	return func(t *testing.T, fx *fixture) {
		name := segmentName(fx.segs[1])
		bad := fx.sealedRecordBefore(2)
		badPos := fx.segs[1] + 2

		r := openReader(t, fx.dir)
		_, err := r.Verify(context.Background(), nil)
		wantCorrupt(t, "verify", err, name, bad.off)

		var seen []uint64
		_, err = r.Scan(1, func(rec *codec.Record) error {
			seen = append(seen, rec.Position)
			return nil
		})
		wantCorrupt(t, "scan across the damage", err, name, bad.off)
		if uint64(len(seen)) != badPos-1 || (len(seen) > 0 && seen[len(seen)-1] != badPos-1) {
			t.Errorf("scan saw %d events (last %v), want exactly the %d before the damage", len(seen), seen[max(len(seen)-1, 0):], badPos-1)
		}
		_, err = r.ReadAt(badPos)
		wantCorrupt(t, fmt.Sprintf("ReadAt(%d)", badPos), err, name, anyOffset)
		if !truncated {
			// The record after it is intact and found through the offsets.
			ev, err := r.ReadAt(badPos + 1)
			if err != nil {
				t.Errorf("ReadAt(%d), after the damaged record: %v", badPos+1, err)
			} else {
				sameEvents(t, "ReadAt", []codec.Event{ev}, fx.events[badPos:badPos+1])
			}
		}
		_, err = r.Scan(badPos+1, func(*codec.Record) error { return nil })
		if truncated {
			wantCorrupt(t, "scan from past the cut", err, name, anyOffset)
		} else if err != nil {
			t.Errorf("scan from past the damaged record: %v", err)
		}

		w := openWriter(t, fx.dir)
		before := snapshot(t, fx.dir)
		for _, drop := range []bool{false, true} {
			_, err = w.Repair(context.Background(), drop, nil)
			ce := wantCorrupt(t, fmt.Sprintf("repair(dropDamaged=%v)", drop), err, name, anyOffset)
			if ce != nil && (ce.Offset < segmentHeaderSize || ce.Offset > bad.off) {
				t.Errorf("repair names offset %d, want one in [%d, %d]", ce.Offset, segmentHeaderSize, bad.off)
			}
			sameFiles(t, fmt.Sprintf("repair(dropDamaged=%v)", drop), before, snapshot(t, fx.dir))
		}
	}
}

// checkDeletedSegment: a missing sealed segment is corruption wherever it
// is met, never "not found" and never a silent gap.
func checkDeletedSegment(t *testing.T, fx *fixture) {
	missing := fx.segs[1]
	r := openReader(t, fx.dir)
	_, err := r.Verify(context.Background(), nil)
	wantCorrupt(t, "verify", err, segmentName(fx.segs[2]), 0)
	var n int
	_, err = r.Scan(1, func(*codec.Record) error { n++; return nil })
	if !errors.Is(err, log.ErrCorrupt) {
		t.Errorf("scan across a missing segment: %v after %d events, want ErrCorrupt", err, n)
	}
	_, err = r.ReadAt(missing)
	if !errors.Is(err, log.ErrCorrupt) {
		t.Errorf("ReadAt(%d), in the missing segment: %v, want ErrCorrupt", missing, err)
	}
	w := openWriter(t, fx.dir)
	before := snapshot(t, fx.dir)
	_, err = w.Repair(context.Background(), false, nil)
	wantCorrupt(t, "repair", err, segmentName(fx.segs[2]), 0)
	sameFiles(t, "repair", before, snapshot(t, fx.dir))
}

// truncateActive cuts the active segment in the middle of its second to
// last record, below the committed end.
func truncateActive(t *testing.T, fx *fixture) {
	recs := segmentRecords(t, fx.dir, fx.commit.active)
	if len(recs) < 2 {
		t.Fatalf("active segment has %d records", len(recs))
	}
	truncate(t, fx.activePath(), recs[len(recs)-2].off+20)
}

// keptAfterActiveCut is the events a --drop-damaged repair keeps: those of
// the batches that end before the cut record.
func (fx *fixture) keptAfterActiveCut(t *testing.T) ([]codec.Event, int64) {
	recs := segmentRecords(t, fx.dir, fx.commit.active) // of the cut file: all but the last two
	cut := fx.activeRecs[len(fx.activeRecs)-2]
	last := fx.commit.active - 1
	for _, r := range recs {
		if r.eob {
			last = r.pos
		}
	}
	return fx.events[:last], cut.off
}

func checkActiveTruncated(t *testing.T, fx *fixture) {
	name := segmentName(fx.commit.active)
	kept, cutOff := fx.keptAfterActiveCut(t)
	r := openReader(t, fx.dir)
	_, err := r.Verify(context.Background(), nil)
	wantCorrupt(t, "verify", err, name, cutOff)
	_, err = r.Scan(1, func(*codec.Record) error { return nil })
	wantCorrupt(t, "scan", err, name, cutOff)

	w := openWriter(t, fx.dir)
	before := snapshot(t, fx.dir)
	_, err = w.Repair(context.Background(), false, nil)
	wantCorrupt(t, "repair", err, name, anyOffset)
	if err != nil && !strings.Contains(err.Error(), "drop-damaged") {
		t.Errorf("repair error %q does not point at --drop-damaged", err)
	}
	sameFiles(t, "repair", before, snapshot(t, fx.dir))

	rep, err := w.Repair(context.Background(), true, nil)
	if err != nil {
		t.Fatalf("repair --drop-damaged: %v", err)
	}
	if len(rep.Actions) == 0 {
		t.Errorf("repair --drop-damaged reports no actions")
	}
	verifyClean(t, w)
	sameEvents(t, "after repair", mustReadAll(t, w), kept)
	checkHeads(t, w, kept)
	res := appendEvent(t, w, "acct-0", "after-repair")
	if res.Position != uint64(len(kept))+1 {
		t.Errorf("append after repair at position %d, want %d", res.Position, len(kept)+1)
	}
	verifyClean(t, w)
}

// checkAppendAfterActiveTruncated: acknowledged bytes below the committed
// end are missing; the next writer must not write its batch past the hole
// (where a --drop-damaged repair would later drop it, acknowledged).
func checkAppendAfterActiveTruncated(t *testing.T, fx *fixture) {
	name := segmentName(fx.commit.active)
	w := openWriter(t, fx.dir)
	before := snapshot(t, fx.dir)
	var b log.Batch
	if err := b.Add("acct-0", "Deposited", "after-damage", []byte(`{}`), nil); err != nil {
		t.Fatal(err)
	}
	res, err := w.Append(context.Background(), &b)
	if err == nil {
		t.Errorf("append to a segment cut below its committed end succeeded: %+v", res)
	}
	wantCorrupt(t, "append", err, name, anyOffset)
	after := snapshot(t, fx.dir)
	for f := range before {
		if strings.HasSuffix(f, ".seg") && !bytes.Equal(before[f], after[f]) {
			t.Errorf("append changed %s (%d bytes, was %d)", f, len(after[f]), len(before[f]))
		}
	}
	if _, err := w.Verify(context.Background(), nil); err == nil {
		t.Errorf("verify passes on a segment cut below its committed end")
	}
}

// staleHeads saves the heads table, appends more (to old streams and a new
// one), then puts the saved table back. With claimCurrent its applied
// mark is then set to the committed end, so it claims to cover entries it
// does not.
func staleHeads(claimCurrent bool) func(t *testing.T, fx *fixture) {
	return func(t *testing.T, fx *fixture) {
		path := join(fx.dir, headsFile)
		saved := readFile(t, path)
		w, err := Open(fx.dir, Options{Create: true, SegmentSize: corruptSegSize, Sync: SyncNone})
		if err != nil {
			t.Fatal(err)
		}
		for i, stream := range []string{"acct-0", "late-1", "acct-3", "late-1", "acct-0"} {
			var b log.Batch
			for j := 0; j <= i%2; j++ {
				if err := b.Add(stream, "Moved", fmt.Sprintf("late-%d-%d", i, j), []byte(`{"late":true}`), nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.Append(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
		fx.refresh(t)
		replaceFile(t, path, saved)
		if claimCurrent {
			putWord(t, path, 40, fx.commit.next-1)
		}
	}
}

// checkHeadsBehind: a heads table whose applied mark is behind the log is
// normal (a writer died before updating it): readers overlay the records
// past the mark, Verify accepts it (it skips what the table has not
// absorbed), the next writer catches it up.
func checkHeadsBehind(t *testing.T, fx *fixture) {
	r := openReader(t, fx.dir)
	checkHeads(t, r, fx.events)
	if _, err := r.Verify(context.Background(), nil); err != nil {
		t.Errorf("verify with a heads table behind the log: %v", err)
	}
	w := openWriter(t, fx.dir)
	checkHeads(t, w, fx.events)
	res := appendEvent(t, w, "late-1", "after-damage")
	all := append(slices.Clone(fx.events), res.event(t, w))
	if res.Version != headsOf(all)["late-1"].Version {
		t.Errorf("append to late-1 got version %d, want %d", res.Version, headsOf(all)["late-1"].Version)
	}
	verifyClean(t, w)
	if got := tableApplied(t, fx.dir, headsFile); got != uint64(len(all)) {
		t.Errorf("heads applied %d after the append, want %d", got, len(all))
	}
	checkHeads(t, w, all)
	if _, err := w.Repair(context.Background(), false, nil); err != nil {
		t.Fatalf("repair: %v", err)
	}
	verifyClean(t, w)
	checkHeads(t, openReader(t, fx.dir), all)
}

// checkHeadsWrong: a heads table that disagrees with the log on an entry
// it claims to cover is corruption: Verify names it, Repair rebuilds it.
func checkHeadsWrong(t *testing.T, fx *fixture) {
	r := openReader(t, fx.dir)
	_, err := r.Verify(context.Background(), nil)
	wantCorrupt(t, "verify", err, headsFile, -1)
	w := openWriter(t, fx.dir)
	rep, err := w.Repair(context.Background(), false, nil)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if rep.Streams != len(headsOf(fx.events)) || rep.Events != uint64(len(fx.events)) {
		t.Errorf("repair report %+v, want %d streams, %d events", rep, len(headsOf(fx.events)), len(fx.events))
	}
	verifyClean(t, w)
	checkHeads(t, w, fx.events)
	checkHeads(t, openReader(t, fx.dir), fx.events)
}

// checkHeadsDeletedReader: a reader that finds no heads table recovers it
// (once, under the lock) and answers from it.
func checkHeadsDeletedReader(t *testing.T, fx *fixture) {
	r := openReader(t, fx.dir)
	if !fileExists(join(fx.dir, headsFile)) {
		t.Errorf("reader open did not restore the heads table")
	}
	checkHeads(t, r, fx.events)
	verifyClean(t, r)
}

func checkHeadsDeletedWriter(t *testing.T, fx *fixture) {
	w := openWriter(t, fx.dir)
	checkHeads(t, w, fx.events)
	res := appendEvent(t, w, "acct-4", "after-damage")
	all := append(slices.Clone(fx.events), res.event(t, w))
	if want := headsOf(all)["acct-4"].Version; res.Version != want {
		t.Errorf("append to acct-4 got version %d, want %d", res.Version, want)
	}
	verifyClean(t, w)
	checkHeads(t, openReader(t, fx.dir), all)
}

// checkHeadsGarbage: a heads table with a bad header is a derived file to
// rebuild. A reader may refuse (naming the file) or recover; the next
// writer rebuilds it.
func checkHeadsGarbage(t *testing.T, fx *fixture) {
	r, err := Open(fx.dir, Options{})
	if err != nil {
		wantCorrupt(t, "reader open", err, headsFile, anyOffset)
	} else {
		checkHeads(t, r, fx.events)
		r.Close()
	}
	w := openWriter(t, fx.dir)
	res := appendEvent(t, w, "acct-2", "after-damage")
	all := append(slices.Clone(fx.events), res.event(t, w))
	if want := headsOf(all)["acct-2"].Version; res.Version != want {
		t.Errorf("append to acct-2 got version %d, want %d", res.Version, want)
	}
	verifyClean(t, w)
	checkHeads(t, openReader(t, fx.dir), all)
}

// checkIDsDeleted: the id index is derived: Verify reports it missing, the
// next writer rebuilds it and still recognises a retried batch.
func checkIDsDeleted(t *testing.T, fx *fixture) {
	r := openReader(t, fx.dir)
	_, err := r.Verify(context.Background(), nil)
	wantCorrupt(t, "verify", err, idsFile, -1)

	w := openWriter(t, fx.dir)
	retry := builderBatch(t, 5)
	res, err := w.Append(context.Background(), retry)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	for _, r := range res {
		orig := fx.byID(r.ID)
		if !r.Duplicate || orig == nil || r.Position != orig.Position || r.Version != orig.Version {
			t.Errorf("retry of %s: %+v, want a duplicate of %+v", r.ID, r, orig)
		}
	}
	sameEvents(t, "after retry", mustReadAll(t, w), fx.events)
	if !fileExists(join(fx.dir, idsFile)) {
		t.Errorf("ids table not rebuilt")
	}
	verifyClean(t, w)
	// A retry with an expectation that no longer holds is still a no-op.
	retry = builderBatch(t, 7)
	for _, s := range retry.Streams() {
		retry.Expect(s, log.Expectation{Kind: log.ExpectNone})
	}
	if res, err := w.Append(context.Background(), retry); err != nil || !res[0].Duplicate {
		t.Errorf("retry with expectations: %+v, %v", res, err)
	}
}

// checkCommitLost: with no valid commit slot a writer refuses (pointing at
// repair), and Repair rebuilds the commit from the segments.
func checkCommitLost(t *testing.T, fx *fixture) {
	_, err := Open(fx.dir, Options{})
	wantCorrupt(t, "reader open", err, commitFile, anyOffset)

	w := openWriter(t, fx.dir)
	segsBefore := snapshot(t, fx.dir)
	_, err = w.Append(context.Background(), builderBatch(t, 99))
	wantCorrupt(t, "append", err, commitFile, anyOffset)
	if err != nil && !strings.Contains(err.Error(), "repair") {
		t.Errorf("append error %q does not mention repair", err)
	}
	for f, b := range snapshot(t, fx.dir) {
		if strings.HasSuffix(f, ".seg") && !bytes.Equal(b, segsBefore[f]) {
			t.Errorf("failed append changed %s", f)
		}
	}
	if _, err := w.Repair(context.Background(), false, nil); err != nil {
		t.Fatalf("repair: %v", err)
	}
	verifyClean(t, w)
	sameEvents(t, "after repair", mustReadAll(t, w), fx.events)
	checkHeads(t, w, fx.events)
	res := appendEvent(t, w, "acct-3", "after-repair")
	if res.Position != fx.next() {
		t.Errorf("append after repair at %d, want %d", res.Position, fx.next())
	}
	verifyClean(t, w)
	r := openReader(t, fx.dir)
	sameEvents(t, "reader after repair", mustReadAll(t, r), fx.events, res.event(t, r))
}

// checkCommitDeleted: a store directory that has segments but no commit
// file is damaged, not new: opening it to write must not replace the log.
func checkCommitDeleted(t *testing.T, fx *fixture) {
	before := snapshot(t, fx.dir)
	w, err := Open(fx.dir, Options{Create: true, SegmentSize: corruptSegSize})
	after := snapshot(t, fx.dir)
	for f, b := range before {
		if strings.HasSuffix(f, ".seg") && !bytes.Equal(b, after[f]) {
			t.Errorf("open to write with the commit file missing rewrote %s (%d bytes, was %d)", f, len(after[f]), len(b))
		}
	}
	if err != nil {
		wantCorrupt(t, "open", err, commitFile, anyOffset)
		return
	}
	defer w.Close()
	if _, err := w.Repair(context.Background(), false, nil); err != nil {
		t.Fatalf("repair: %v", err)
	}
	verifyClean(t, w)
	sameEvents(t, "after repair", mustReadAll(t, w), fx.events)
}

// tearCommitSlot damages the newest (or the older) commit slot.
func tearCommitSlot(t *testing.T, fx *fixture, newest bool) {
	p := join(fx.dir, commitFile)
	b := readFile(t, p)
	a, okA := decodeCommit(b)
	c, okB := decodeCommit(b[commitSlotGap:])
	if !okA || !okB {
		t.Fatalf("commit slots valid: %v %v", okA, okB)
	}
	off := 0
	if (c.seq > a.seq) == newest {
		off = commitSlotGap
	}
	flipBit(t, p, int64(off+10), 0x40)
	fx.olderSlot, fx.newerSlot = a, c
	if c.seq < a.seq {
		fx.olderSlot, fx.newerSlot = c, a
	}
}

// checkNewestSlotTorn: a torn newest slot falls back to the older one (one
// publish behind); the next writer finds the batch that publish covered
// and adopts it.
func checkNewestSlotTorn(t *testing.T, fx *fixture) {
	older := fx.olderSlot
	r := openReader(t, fx.dir)
	c, err := r.committed()
	if err != nil {
		t.Fatalf("commit with one slot torn: %v", err)
	}
	if c.seq != older.seq || c.next != older.next {
		t.Fatalf("reader uses slot seq %d next %d, want the older, seq %d next %d", c.seq, c.next, older.seq, older.next)
	}
	sameEvents(t, "reader", mustReadAll(t, r), fx.events[:older.next-1])

	w := openWriter(t, fx.dir)
	res := appendEvent(t, w, "acct-0", "after-damage")
	all := append(slices.Clone(fx.events), res.event(t, w))
	if res.Position != fx.next() {
		t.Errorf("append at position %d, want %d (the last published batch kept)", res.Position, fx.next())
	}
	sameEvents(t, "after append", mustReadAll(t, w), all)
	verifyClean(t, w)
	checkHeads(t, w, all)
	// And after enough appends to roll again.
	more := fx.appendSinglesWith(t, w, true)
	all = append(all, more...)
	verifyClean(t, w)
	sameEvents(t, "after rolling", mustReadAll(t, w), all)
}

// checkNewestSlotTornReaderHeads: a reader that falls back to the older
// slot answers Head and Streams consistently with the log it reads, although
// the heads table has already absorbed the batch of the torn publish.
func checkNewestSlotTornReaderHeads(t *testing.T, fx *fixture) {
	visible := fx.events[:fx.olderSlot.next-1]
	r := openReader(t, fx.dir)
	sameEvents(t, "reader", mustReadAll(t, r), visible)
	checkHeads(t, r, visible)
}

func checkOlderSlotTorn(t *testing.T, fx *fixture) {
	r := openReader(t, fx.dir)
	c, err := r.committed()
	if err != nil || c.seq != fx.newerSlot.seq {
		t.Fatalf("commit with the older slot torn: %+v, %v; want seq %d", c, err, fx.newerSlot.seq)
	}
	sameEvents(t, "reader", mustReadAll(t, r), fx.events)
	verifyClean(t, r)
	w := openWriter(t, fx.dir)
	res := appendEvent(t, w, "acct-0", "after-damage")
	if res.Position != fx.next() {
		t.Errorf("append at %d, want %d", res.Position, fx.next())
	}
	verifyClean(t, w)
	// The torn slot is the one the next publish overwrites.
	b := readFile(t, join(fx.dir, commitFile))
	_, okA := decodeCommit(b)
	_, okB := decodeCommit(b[commitSlotGap:])
	if !okA || !okB {
		t.Errorf("after a publish, commit slots valid: %v %v", okA, okB)
	}
}

// setBoot gives the valid commit slots another boot id, as if the last
// writer ran before the machine restarted.
func setBoot(t *testing.T, fx *fixture) {
	t.Helper()
	p := join(fx.dir, commitFile)
	b := readFile(t, p)
	for _, off := range []int{0, commitSlotGap} {
		if c, ok := decodeCommit(b[off:]); ok {
			c.boot = [16]byte{0xb0, 0x07}
			copy(b[off:], c.encode())
		}
	}
	writeFile(t, p, b)
}

// checkRebootClean: after a restart a reader recovers (once, under the
// lock) before it reads; nothing acknowledged is lost.
func checkRebootClean(t *testing.T, fx *fixture) {
	r := openReader(t, fx.dir)
	sameEvents(t, "reader after a reboot", mustReadAll(t, r), fx.events)
	checkHeads(t, r, fx.events)
	verifyClean(t, r)
	if c, err := r.committed(); err != nil || c.boot != bootID() {
		t.Errorf("commit after recovery: boot %x, %v; want this boot %x", c.boot, err, bootID())
	}
	w := openWriter(t, fx.dir)
	res := appendEvent(t, w, "acct-0", "after-reboot")
	if res.Position != fx.next() {
		t.Errorf("append after a reboot at %d, want %d", res.Position, fx.next())
	}
	verifyClean(t, w)
	sameEvents(t, "after append", mustReadAll(t, w), fx.events, res.event(t, w))
}

func checkRebootLostPublish(t *testing.T, fx *fixture) {
	_, batch := fx.tailBatch(t, true)
	all := append(slices.Clone(fx.events), batch...)
	r := openReader(t, fx.dir)
	sameEvents(t, "reader after a reboot", mustReadAll(t, r), all)
	checkHeads(t, r, all)
	verifyClean(t, r)
}

// checkRebootActiveTruncated: after a restart, acknowledged bytes missing
// below the committed end are not dropped silently: recovery stops and
// names the file; repair --drop-damaged cuts the log there.
func checkRebootActiveTruncated(t *testing.T, fx *fixture) {
	name := segmentName(fx.commit.active)
	kept, _ := fx.keptAfterActiveCut(t)
	_, err := Open(fx.dir, Options{})
	wantCorrupt(t, "reader open", err, name, anyOffset)
	w := openWriter(t, fx.dir)
	before := snapshot(t, fx.dir)
	_, err = w.Append(context.Background(), builderBatch(t, 99))
	wantCorrupt(t, "append", err, name, anyOffset)
	if err != nil && !strings.Contains(err.Error(), "drop-damaged") {
		t.Errorf("append error %q does not point at --drop-damaged", err)
	}
	for f, b := range snapshot(t, fx.dir) {
		if strings.HasSuffix(f, ".seg") && !bytes.Equal(b, before[f]) {
			t.Errorf("failed append changed %s", f)
		}
	}
	if _, err := w.Repair(context.Background(), true, nil); err != nil {
		t.Fatalf("repair --drop-damaged: %v", err)
	}
	verifyClean(t, w)
	sameEvents(t, "after repair", mustReadAll(t, w), kept)
	checkHeads(t, openReader(t, fx.dir), kept)
}

// checkOffsetsDamaged: offsets files are derived: reads fall back to
// scanning, Verify names the file, Repair rebuilds it.
func checkOffsetsDamaged(segIndex int) func(t *testing.T, fx *fixture) {
	return func(t *testing.T, fx *fixture) {
		first := fx.commit.active
		if segIndex >= 0 {
			first = fx.segs[segIndex]
		}
		end := fx.commit.next
		if i := slices.Index(fx.segs, first); i+1 < len(fx.segs) {
			end = fx.segs[i+1]
		}
		r := openReader(t, fx.dir)
		for pos := first; pos < end; pos++ {
			ev, err := r.ReadAt(pos)
			if err != nil {
				t.Fatalf("ReadAt(%d): %v", pos, err)
			}
			sameEvents(t, fmt.Sprintf("ReadAt(%d)", pos), []codec.Event{ev}, fx.events[pos-1:pos])
		}
		mid := first + (end-first)/2
		var got []codec.Event
		if _, err := r.Scan(mid, func(rec *codec.Record) error {
			got = append(got, rec.Event())
			return nil
		}); err != nil {
			t.Fatalf("scan from %d: %v", mid, err)
		}
		sameEvents(t, fmt.Sprintf("scan from %d", mid), got, fx.events[mid-1:])
		checkHeads(t, r, fx.events)
		_, err := r.Verify(context.Background(), nil)
		wantCorrupt(t, "verify", err, offsetsName(first), 0)

		w := openWriter(t, fx.dir)
		if _, err := w.Repair(context.Background(), false, nil); err != nil {
			t.Fatalf("repair: %v", err)
		}
		if want := int64(end-first) * offsetEntrySize; fileSize(t, join(fx.dir, offsetsName(first))) != want {
			t.Errorf("rebuilt %s has %d bytes, want %d", offsetsName(first), fileSize(t, join(fx.dir, offsetsName(first))), want)
		}
		verifyClean(t, w)
		verifyClean(t, r)
		res := appendEvent(t, w, "acct-0", "after-repair")
		verifyClean(t, w)
		sameEvents(t, "after append", mustReadAll(t, w), fx.events, res.event(t, w))
	}
}

// orphanSegment leaves the file a writer killed while rolling leaves: the
// next segment, named for the next position, empty or with only a header.
// The active segment is fresh first, so appends can pass the orphan's
// position before the log rolls again.
func orphanSegment(header bool) func(t *testing.T, fx *fixture) {
	return func(t *testing.T, fx *fixture) {
		fx.appendSingles(t, true)
		fx.orphan = fx.commit.next
		var b []byte
		if header {
			b = encodeSegmentHeader(fx.orphan, time.Now().UnixNano())
		}
		writeFile(t, join(fx.dir, segmentName(fx.orphan)), b)
		writeFile(t, join(fx.dir, offsetsName(fx.orphan)), nil)
	}
}

func checkOrphan(t *testing.T, fx *fixture) {
	name := segmentName(fx.orphan)
	r := openReader(t, fx.dir)
	rep, err := r.Verify(context.Background(), nil)
	if err != nil {
		t.Fatalf("verify with an orphan segment: %v", err)
	}
	if !hasNote(rep, name) {
		t.Errorf("verify notes %q, want one about %s", rep.Notes, name)
	}
	sameEvents(t, "reader", mustReadAll(t, r), fx.events)

	w := openWriter(t, fx.dir)
	res := appendEvent(t, w, "acct-1", "after-orphan")
	if res.Position != fx.orphan {
		t.Errorf("append at %d, want %d", res.Position, fx.orphan)
	}
	all := append(slices.Clone(fx.events), res.event(t, w))
	if _, err := w.Verify(context.Background(), nil); err != nil {
		t.Errorf("verify after one append past the orphan: %v", err)
	}
	sameEvents(t, "after append", mustReadAll(t, w), all)
	for range 2 {
		all = append(all, fx.appendSinglesWith(t, w, true)...)
	}
	verifyClean(t, w)
	sameEvents(t, "after rolling", mustReadAll(t, w), all)
	sameEvents(t, "fresh reader", mustReadAll(t, openReader(t, fx.dir)), all)
	checkHeads(t, w, all)
	if _, err := w.Repair(context.Background(), false, nil); err != nil {
		t.Fatalf("repair: %v", err)
	}
	verifyClean(t, w)
	sameEvents(t, "after repair", mustReadAll(t, w), all)
}

// checkOrphanRepairLater: an orphan the log has grown past (appends that
// did not roll yet) is still not part of the log: Repair must not mistake
// it for a gap in the log.
func checkOrphanRepairLater(t *testing.T, fx *fixture) {
	w := openWriter(t, fx.dir)
	var all []codec.Event
	all = append(all, fx.events...)
	for i := range 3 {
		res := appendEvent(t, w, "acct-1", fmt.Sprintf("after-orphan-%d", i))
		all = append(all, res.event(t, w))
	}
	// The next writer either removes the orphan (no valid header) or
	// adopts it as the new active segment (a valid header at the next
	// position is what a lost publish that rolled also leaves); either
	// way the log grows past it consistently.
	if c, _ := w.committed(); c.next <= fx.orphan {
		t.Fatalf("test setup: next %d, orphan %d", c.next, fx.orphan)
	}
	if _, err := w.Verify(context.Background(), nil); err != nil {
		t.Errorf("verify: %v", err)
	}
	if _, err := w.Repair(context.Background(), false, nil); err != nil {
		t.Fatalf("repair with an orphan segment the log has grown past: %v", err)
	}
	verifyClean(t, w)
	sameEvents(t, "after repair", mustReadAll(t, w), all)
	all = append(all, fx.appendSinglesWith(t, w, true)...)
	verifyClean(t, w)
	sameEvents(t, "after rolling", mustReadAll(t, w), all)
}

// --- the store ------------------------------------------------------------

// builderBatch is batch i of the fixture: 1–4 events over five streams,
// with producer ids (so a retry is recognised) and some metadata.
func builderBatch(t *testing.T, i int) *log.Batch {
	t.Helper()
	var b log.Batch
	for j := 0; j < 1+i%4; j++ {
		var meta []byte
		if j == 1 {
			meta = []byte(`{"by":"test"}`)
		}
		data := fmt.Sprintf(`{"i":%d,"j":%d,"pad":"%s"}`, i, j, strings.Repeat("x", 40+i%7))
		if err := b.Add(fmt.Sprintf("acct-%d", (i+j)%5), "Deposited", fmt.Sprintf("ev-%d-%d", i, j), []byte(data), meta); err != nil {
			t.Fatal(err)
		}
	}
	return &b
}

func buildStore(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{Create: true, SegmentSize: corruptSegSize, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if _, err := s.Append(context.Background(), builderBatch(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	fx := &fixture{dir: dir}
	fx.refresh(t)
	if len(fx.segs) < 3 || fx.segs[len(fx.segs)-1] != fx.commit.active || len(fx.activeRecs) < 2 {
		t.Fatalf("fixture: segments %v, active %d with %d records", fx.segs, fx.commit.active, len(fx.activeRecs))
	}
	r := openReader(t, dir)
	verifyClean(t, r)
	r.Close()
	return fx
}

// More fixture state, recorded by refresh and the damage functions.
type fixtureState struct {
	activeBytes []byte      // committed bytes of the active segment
	activeRecs  []recordLoc // its records
	olderSlot   commitState // commit slots before tearCommitSlot
	newerSlot   commitState
	orphan      uint64      // first position of the orphan segment
	sealedRecs  []recordLoc // records of the second segment before damage
	tailTime    int64       // time of the records tailBatch makes
}

// refresh re-reads what the store holds, through a reader.
func (fx *fixture) refresh(t *testing.T) {
	t.Helper()
	r := openReader(t, fx.dir)
	defer r.Close()
	fx.events = mustReadAll(t, r)
	c, err := r.committed()
	if err != nil {
		t.Fatal(err)
	}
	fx.commit = c
	if fx.segs, err = listSegments(vfs.OS, fx.dir); err != nil {
		t.Fatal(err)
	}
	seg := readFile(t, fx.activePath())
	if int64(len(seg)) != c.size {
		t.Fatalf("active segment has %d bytes, commit says %d", len(seg), c.size)
	}
	fx.activeBytes = seg
	fx.activeRecs = segmentRecords(t, fx.dir, c.active)
}

func (fx *fixture) activePath() string { return join(fx.dir, segmentName(fx.commit.active)) }

// next is the position after the last event of the fixture.
func (fx *fixture) next() uint64 { return uint64(len(fx.events)) + 1 }

func (fx *fixture) byID(id string) *codec.Event {
	for i := range fx.events {
		if fx.events[i].ID == id {
			return &fx.events[i]
		}
	}
	return nil
}

// sealedRecord is record i of the second segment (sealed).
func (fx *fixture) sealedRecord(t *testing.T, i int) recordLoc {
	t.Helper()
	recs := segmentRecords(t, fx.dir, fx.segs[1])
	if len(recs) <= i+1 {
		t.Fatalf("segment %d has %d records", fx.segs[1], len(recs))
	}
	fx.sealedRecs = recs
	return recs[i]
}

// sealedRecordBefore is record i of the second segment as it was before
// the damage.
func (fx *fixture) sealedRecordBefore(i int) recordLoc { return fx.sealedRecs[i] }

// appendSingles appends one event at a time until an append rolls the log
// (roll) or one does not, then closes the writer and refreshes.
func (fx *fixture) appendSingles(t *testing.T, roll bool) {
	t.Helper()
	w, err := Open(fx.dir, Options{Create: true, SegmentSize: corruptSegSize, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	fx.appendSinglesWith(t, w, roll)
	w.Close()
	fx.refresh(t)
}

func (fx *fixture) appendSinglesWith(t *testing.T, w *Store, roll bool) []codec.Event {
	t.Helper()
	var out []codec.Event
	for range 200 {
		before, err := w.committed()
		if err != nil {
			t.Fatal(err)
		}
		fx.extra++
		res := appendEvent(t, w, fmt.Sprintf("acct-%d", fx.extra%5), fmt.Sprintf("extra-%d", fx.extra))
		out = append(out, res.event(t, w))
		after, err := w.committed()
		if err != nil {
			t.Fatal(err)
		}
		if (after.active != before.active) == roll {
			return out
		}
	}
	t.Fatalf("no append rolled=%v in 200", roll)
	return nil
}

// tailBatch encodes a batch that continues the log: a new stream ghost-1
// (two events) around one event of acct-0, flags 0, the last one flagged
// end-of-batch if eob. It returns the bytes and the events.
func (fx *fixture) tailBatch(t *testing.T, eob bool) ([]byte, []codec.Event) {
	t.Helper()
	next := fx.next()
	acct := headsOf(fx.events)["acct-0"]
	if fx.tailTime == 0 {
		fx.tailTime = time.Now().UnixNano()
	}
	type spec struct {
		stream         string
		pos, ver, prev uint64
	}
	specs := []spec{
		{"ghost-1", next, 1, 0},
		{"acct-0", next + 1, acct.Version + 1, acct.Last},
		{"ghost-1", next + 2, 2, next},
	}
	var buf []byte
	var evs []codec.Event
	for i, s := range specs {
		id := fmt.Sprintf("ghost-%d", i)
		data := []byte(fmt.Sprintf(`{"ghost":%d}`, i))
		start := len(buf)
		buf = codec.AppendRecord(buf, s.stream, "Haunted", id, data, nil)
		var flags uint16
		if eob && i == len(specs)-1 {
			flags = codec.FlagEndOfBatch
		}
		codec.PatchRecord(buf[start:], s.pos, s.ver, s.prev, fx.tailTime, flags)
		evs = append(evs, codec.Event{Position: s.pos, Stream: s.stream, Version: s.ver, Type: "Haunted",
			Time: time.Unix(0, fx.tailTime).UTC(), ID: id, Data: data})
	}
	return buf, evs
}

// --- damage ---------------------------------------------------------------

func tornTail(garbage []byte) func(t *testing.T, fx *fixture) {
	return func(t *testing.T, fx *fixture) { appendBytes(t, fx.activePath(), garbage) }
}

// removeHeadsEntry clears the slot of stream in the heads table, leaving
// the applied mark as it is.
func removeHeadsEntry(t *testing.T, dir, stream string) {
	t.Helper()
	path := join(dir, headsFile)
	b := readFile(t, path)
	slots := binary.LittleEndian.Uint64(b[16:])
	width := uint64(16 + 8*headsValues)
	key := keyOf(stream)
	for i := uint64(0); i < slots; i++ {
		off := hashHeaderSize + i*width
		if binary.LittleEndian.Uint64(b[off:]) == key.a && binary.LittleEndian.Uint64(b[off+8:]) == key.b {
			clear(b[off : off+width])
			replaceFile(t, path, b)
			return
		}
	}
	t.Fatalf("no heads entry for %s", stream)
}

// --- helpers --------------------------------------------------------------

type recordLoc struct {
	off, end int64
	pos      uint64
	eob      bool
}

// segmentRecords decodes the records of a segment file from its header to
// the first that does not decode.
func segmentRecords(t *testing.T, dir string, first uint64) []recordLoc {
	t.Helper()
	b := readFile(t, join(dir, segmentName(first)))
	var out []recordLoc
	for off := int64(segmentHeaderSize); off < int64(len(b)); {
		rec, err := codec.DecodeRecord(b[off:])
		if err != nil {
			break
		}
		out = append(out, recordLoc{off: off, end: off + int64(rec.Size), pos: rec.Position, eob: rec.EndOfBatch()})
		off += int64(rec.Size)
	}
	return out
}

func openReader(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open to read: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openWriter(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{Create: true, SegmentSize: corruptSegSize, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open to write: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type appended struct{ log.Result }

// event reads back the event an append stored.
func (a appended) event(t *testing.T, s *Store) codec.Event {
	t.Helper()
	ev, err := s.ReadAt(a.Position)
	if err != nil {
		t.Fatalf("ReadAt(%d): %v", a.Position, err)
	}
	if ev.ID != a.ID || ev.Stream != a.Stream || ev.Version != a.Version {
		t.Fatalf("position %d holds %s %s v%d, the append said %s %s v%d", a.Position, ev.Stream, ev.ID, ev.Version, a.Stream, a.ID, a.Version)
	}
	return ev
}

func appendEvent(t *testing.T, s *Store, stream, id string) appended {
	t.Helper()
	var b log.Batch
	if err := b.Add(stream, "Deposited", id, []byte(`{"n":1}`), nil); err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(context.Background(), &b)
	if err != nil {
		t.Fatalf("append %s to %s: %v", id, stream, err)
	}
	return appended{res[0]}
}

func readAll(s *Store) ([]codec.Event, error) {
	var out []codec.Event
	_, err := s.Scan(1, func(rec *codec.Record) error {
		out = append(out, rec.Event())
		return nil
	})
	return out, err
}

func mustReadAll(t *testing.T, s *Store) []codec.Event {
	t.Helper()
	evs, err := readAll(s)
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	return evs
}

// sameEvents compares got with the concatenation of want and more.
func sameEvents(t *testing.T, what string, got []codec.Event, want []codec.Event, more ...codec.Event) {
	t.Helper()
	want = append(slices.Clone(want), more...)
	if len(got) != len(want) {
		t.Errorf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Position != w.Position || g.Stream != w.Stream || g.Version != w.Version || g.Type != w.Type ||
			g.ID != w.ID || !g.Time.Equal(w.Time) || !bytes.Equal(g.Data, w.Data) || !bytes.Equal(g.Metadata, w.Metadata) {
			t.Errorf("%s: event %d is %s %s v%d at %d, want %s %s v%d at %d", what, i, g.Stream, g.ID, g.Version, g.Position, w.Stream, w.ID, w.Version, w.Position)
			return
		}
	}
}

// headsOf computes every stream's head from the events.
func headsOf(evs []codec.Event) map[string]log.StreamInfo {
	out := map[string]log.StreamInfo{}
	for _, e := range evs {
		info := out[e.Stream]
		info.Stream, info.Version, info.Last, info.LastType, info.LastTime = e.Stream, e.Version, e.Position, e.Type, e.Time
		out[e.Stream] = info
	}
	return out
}

// checkHeads asks Head of every stream and Streams of all, and compares
// with the heads computed from the events.
func checkHeads(t *testing.T, s *Store, evs []codec.Event) {
	t.Helper()
	want := headsOf(evs)
	for name, w := range want {
		got, err := s.Head(name)
		if err != nil {
			t.Errorf("Head(%s): %v", name, err)
			continue
		}
		if got.Version != w.Version || got.Last != w.Last || got.LastType != w.LastType || !got.LastTime.Equal(w.LastTime) {
			t.Errorf("Head(%s) = v%d last %d, want v%d last %d", name, got.Version, got.Last, w.Version, w.Last)
		}
	}
	list, err := s.Streams(nil)
	if err != nil {
		t.Errorf("Streams: %v", err)
		return
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(list) != len(names) {
		t.Errorf("Streams: %d streams, want %d (%v)", len(list), len(names), names)
		return
	}
	for i, got := range list {
		w := want[names[i]]
		if got.Stream != w.Stream || got.Version != w.Version || got.Last != w.Last {
			t.Errorf("Streams[%d] = %s v%d last %d, want %s v%d last %d", i, got.Stream, got.Version, got.Last, w.Stream, w.Version, w.Last)
		}
	}
}

// verifyClean runs Verify and checks the store is whole, with the
// committed end at the end of the active segment.
func verifyClean(t *testing.T, s *Store) {
	t.Helper()
	rep, err := s.Verify(context.Background(), nil)
	if err != nil {
		t.Errorf("verify: %v", err)
		return
	}
	c, err := s.committed()
	if err != nil {
		t.Errorf("commit: %v", err)
		return
	}
	if rep.Events != c.next-1 {
		t.Errorf("verify counted %d events, commit says %d", rep.Events, c.next-1)
	}
	if size := fileSize(t, join(s.dir, segmentName(c.active))); size != c.size {
		t.Errorf("active segment %s has %d bytes, committed %d", segmentName(c.active), size, c.size)
	}
}

func tableApplied(t *testing.T, dir, name string) uint64 {
	t.Helper()
	return binary.LittleEndian.Uint64(readFile(t, join(dir, name))[40:])
}

const anyOffset = -2

// wantCorrupt checks err is a *CorruptError naming file (and offset
// off unless anyOffset) and returns it, or nil after reporting.
func wantCorrupt(t *testing.T, what string, err error, file string, off int64) *log.CorruptError {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want a *CorruptError naming %s", what, file)
		return nil
	}
	var ce *log.CorruptError
	if !errors.As(err, &ce) {
		t.Errorf("%s: %v (%T), want a *CorruptError naming %s", what, err, err, file)
		return nil
	}
	if !errors.Is(err, log.ErrCorrupt) {
		t.Errorf("%s: %v does not match ErrCorrupt", what, err)
	}
	if ce.File != file {
		t.Errorf("%s: error names %s, want %s: %v", what, ce.File, file, err)
	}
	if off != anyOffset && ce.Offset != off {
		t.Errorf("%s: error names offset %d, want %d: %v", what, ce.Offset, off, err)
	}
	return ce
}

func hasNote(rep log.Report, s string) bool {
	for _, n := range rep.Notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// snapshot reads every file of the store but the lock file (which holds
// the PID of the last holder, not data).
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if e.Name() == lockFile || e.IsDir() {
			continue
		}
		out[e.Name()] = readFile(t, join(dir, e.Name()))
	}
	return out
}

func sameFiles(t *testing.T, what string, before, after map[string][]byte) {
	t.Helper()
	for name, b := range before {
		a, ok := after[name]
		if !ok {
			t.Errorf("%s removed %s", what, name)
		} else if !bytes.Equal(a, b) {
			t.Errorf("%s changed %s (%d bytes, was %d)", what, name, len(a), len(b))
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s created %s", what, name)
		}
	}
}

// noPanic runs fn, turning a panic (or a fault on a mapping) into a test
// failure so the other cases still run.
func noPanic(t *testing.T, fn func()) {
	t.Helper()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	fn()
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes a new file and renames it over p, as a process that
// does not share the old inode would see it.
func replaceFile(t *testing.T, p string, b []byte) {
	t.Helper()
	writeFile(t, p+".test", b)
	if err := os.Rename(p+".test", p); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func flipBit(t *testing.T, p string, off int64, mask byte) {
	t.Helper()
	b := readFile(t, p)
	b[off] ^= mask
	writeFile(t, p, b)
}

func putWord(t *testing.T, p string, off int, v uint64) {
	t.Helper()
	b := readFile(t, p)
	binary.LittleEndian.PutUint64(b[off:], v)
	writeFile(t, p, b)
}

func truncate(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Errorf("stat: %v", err)
		return -1
	}
	return st.Size()
}
