package local

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local/vfs"
)

// tables returns the heads table, reopening it if another process has
// replaced it (grown or rebuilt) and, for a writer, rebuilding it if it
// is missing.
func (s *Store) tables() (*hashFile, error) {
	if s.heads != nil && !s.heads.moved() {
		return s.heads, nil
	}
	if s.heads != nil {
		s.heads.close()
		s.heads = nil
	}
	if err := s.openHeads(s.lock != nil); err != nil {
		return nil, err
	}
	if s.heads == nil { // writer, table missing or corrupt
		if err := s.lock.acquire(context.Background(), s.opts.LockTimeout); err != nil {
			return nil, err
		}
		_, err := s.prepare()
		s.lock.release()
		if err != nil {
			return nil, err
		}
	}
	return s.heads, nil
}

// Head returns the head of stream, or ErrNotFound. It costs one table
// lookup and one record read, plus a scan of the records the table has
// not absorbed yet (normally none, or the batch being published).
func (s *Store) Head(stream string) (log.StreamInfo, error) {
	info, _, _, err := s.head(stream)
	return info, err
}

// head is Head, also returning the committed state and the view of the
// limits it judged the stream under, for a read that follows.
func (s *Store) head(stream string) (log.StreamInfo, commitState, *view, error) {
	h, err := s.tables()
	if err != nil {
		return log.StreamInfo{}, commitState{}, nil, err
	}
	applied := h.applied()
	var vals [headsValues]uint64
	found := h.get(keyOf(stream), vals[:])
	c, err := s.committed() // after the table: the table never runs ahead of it
	if err != nil {
		return log.StreamInfo{}, commitState{}, nil, err
	}
	info := log.StreamInfo{Stream: stream}
	if applied >= c.next {
		// The table is ahead of the commit file (a publish lost to a
		// crash of the machine): trust the log alone until a writer
		// recovers.
		found, applied = false, 0
	}
	if found && vals[0] < c.next {
		rec, err := s.recordAt(vals[0], &c)
		if err != nil {
			return info, c, nil, err
		}
		if string(rec.Stream) != stream {
			return info, c, nil, &log.CorruptError{File: headsFile, Offset: -1, Reason: fmt.Sprintf("entry for %q points at an event of %q (run evt repair)", stream, rec.Stream)}
		}
		info.Cut, info.Deleted = splitCut(vals[2])
		setHead(&info, &rec)
	}
	if applied+1 < c.next {
		err := s.iterate(applied+1, &c, func(rec *codec.Record) error {
			if string(rec.Stream) == stream {
				applyInfo(&info, rec)
			}
			return nil
		})
		if err != nil {
			return info, c, nil, err
		}
	}
	if info.Version == 0 {
		return info, c, nil, fmt.Errorf("%w: stream %s", log.ErrNotFound, stream)
	}
	v, err := s.view(&c)
	if err != nil {
		return info, c, nil, err
	}
	return info, c, v, s.retained(&info, v, &c)
}

// retained says whether a stream has events left after the limits, as
// ErrNotFound naming the reason if not. The newest event is enough to
// look at: every limit removes a prefix of a stream.
func (s *Store) retained(info *log.StreamInfo, v *view, c *commitState) error {
	switch {
	case info.Deleted && info.Cut >= info.Version:
		return fmt.Errorf("%w: stream %s (deleted)", log.ErrNotFound, info.Stream)
	case info.Cut >= info.Version:
		return fmt.Errorf("%w: stream %s (truncated before version %d)", log.ErrNotFound, info.Stream, info.Cut+1)
	case v.plain:
		return nil
	}
	rec, err := s.recordAt(info.Last, c)
	if err == nil && v.visible(&rec) {
		return nil
	}
	if err != nil && !errors.Is(err, log.ErrNotFound) {
		return err
	}
	return fmt.Errorf("%w: stream %s (its events were removed by retention)", log.ErrNotFound, info.Stream)
}

// The third value of a heads entry is the stream's cut: the last version
// removed by a truncate or delete marker, with cutDeleted set when that
// was a delete and nothing was appended since.
const cutDeleted = 1 << 63

func splitCut(v uint64) (cut uint64, deleted bool) {
	return v &^ cutDeleted, v&cutDeleted != 0
}

// cutValue is the heads value after a marker with flag and cut: cuts only
// grow (a truncate below the current cut changes nothing).
func cutValue(old uint64, flag uint16, cut uint64) uint64 {
	oldCut, deleted := splitCut(old)
	if cut < oldCut {
		cut = oldCut
	} else {
		deleted = flag == codec.FlagTombstone
	}
	if deleted {
		return cut | cutDeleted
	}
	return cut
}

// applyInfo updates info with a record the heads table has not absorbed.
func applyInfo(info *log.StreamInfo, rec *codec.Record) {
	if rec.Marker() {
		old := info.Cut
		if info.Deleted {
			old |= cutDeleted
		}
		info.Cut, info.Deleted = splitCut(cutValue(old, rec.Flags&^codec.FlagEndOfBatch, rec.Version))
		return
	}
	if rec.Position > info.Last {
		setHead(info, rec)
		info.Deleted = false
	}
}

func setHead(info *log.StreamInfo, rec *codec.Record) {
	info.Version = rec.Version
	info.Last = rec.Position
	info.LastType = string(rec.Type)
	info.LastTime = time.Unix(0, rec.Time).UTC()
}

// Streams returns the head of every stream whose name match accepts
// (all if match is nil), sorted by name.
func (s *Store) Streams(match func(string) bool) ([]log.StreamInfo, error) {
	h, err := s.tables()
	if err != nil {
		return nil, err
	}
	var slots []headSlot
	h.each(func(_ hashKey, vals []uint64) bool {
		slots = append(slots, headSlot{vals: [headsValues]uint64(vals)})
		return true
	})
	return s.streamsOf(h, slots, match)
}

// streamsPage is how many names StreamsWithPrefix takes from the name
// index at a time.
const streamsPage = 4096

// StreamsWithPrefix is Streams for the streams whose name starts with
// prefix: it takes the names from the name index (names.go) and looks
// each up in the heads table, so it reads O(streams with the prefix)
// heads, not every one. An error wrapping log.ErrUnsupported means the
// index is not built yet: use Streams.
func (s *Store) StreamsWithPrefix(prefix string, match func(string) bool) ([]log.StreamInfo, error) {
	h, err := s.tables()
	if err != nil {
		return nil, err
	}
	var slots []headSlot
	from := prefix
	for {
		page, err := s.StreamNames(prefix, from, streamsPage)
		if err != nil {
			return nil, err
		}
		for _, name := range page {
			if match != nil && !match(name) {
				continue
			}
			sl := headSlot{name: name}
			if h.get(keyOf(name), sl.vals[:]) {
				slots = append(slots, sl)
			}
		}
		if len(page) < streamsPage {
			break
		}
		from = page[len(page)-1] + "\x00"
	}
	return s.streamsOf(h, slots, func(name string) bool {
		return strings.HasPrefix(name, prefix) && (match == nil || match(name))
	})
}

// headSlot is one heads-table entry, with the name it was looked up by
// (empty when the table was walked: the record names the stream).
type headSlot struct {
	name string
	vals [headsValues]uint64
}

// streamsOf builds Streams' answer from heads-table entries: it reads
// each entry's newest record, adds the records the table has not
// absorbed yet, and leaves out the streams the limits removed.
func (s *Store) streamsOf(h *hashFile, slots []headSlot, match func(string) bool) ([]log.StreamInfo, error) {
	applied := h.applied()
	c, err := s.committed()
	if err != nil {
		return nil, err
	}
	if applied >= c.next {
		slots, applied = nil, 0 // the table is ahead of the commit: see Head
	}
	// Read heads in log order: sequential-ish reads, and segments open once.
	sort.Slice(slots, func(i, j int) bool { return slots[i].vals[0] < slots[j].vals[0] })
	byName := make(map[string]*log.StreamInfo, len(slots))
	for _, sl := range slots {
		v := sl.vals
		if v[0] >= c.next {
			continue
		}
		rec, err := s.recordAt(v[0], &c)
		if err != nil {
			return nil, err
		}
		name := string(rec.Stream)
		if sl.name != "" && name != sl.name {
			return nil, &log.CorruptError{File: headsFile, Offset: -1, Reason: fmt.Sprintf("entry for %q points at an event of %q (run evt repair)", sl.name, rec.Stream)}
		}
		if match != nil && !match(name) {
			continue
		}
		info := &log.StreamInfo{Stream: name}
		info.Cut, info.Deleted = splitCut(v[2])
		setHead(info, &rec)
		byName[name] = info
	}
	if applied+1 < c.next {
		err := s.iterate(applied+1, &c, func(rec *codec.Record) error {
			name := string(rec.Stream)
			if match != nil && !match(name) {
				return nil
			}
			info := byName[name]
			if info == nil {
				info = &log.StreamInfo{Stream: name}
				byName[name] = info
			}
			applyInfo(info, rec)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	v, err := s.view(&c)
	if err != nil {
		return nil, err
	}
	out := make([]log.StreamInfo, 0, len(byName))
	for _, info := range byName {
		if err := s.retained(info, v, &c); err != nil {
			if errors.Is(err, log.ErrNotFound) {
				continue
			}
			return nil, err
		}
		out = append(out, *info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out, nil
}

// Exists reports whether the directory holds a store, without creating
// anything (for shell completion and friendly errors).
func Exists(dir string) bool {
	_, err := vfs.OS.Stat(join(dir, commitFile))
	return err == nil
}
