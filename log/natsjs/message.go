package natsjs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// The headers of an evt message. Every message carries its stream's
// version and cut, so one read of a subject's last message gives the
// stream's head; markers also carry the last event's position, type and
// time, as the head of a stream whose last message is a marker.
const (
	hdrVersion  = "Evt-Version"
	hdrType     = "Evt-Type"
	hdrID       = "Evt-Id"
	hdrCut      = "Evt-Cut"    // last version cut off by delete or truncate
	hdrCutAt    = "Evt-Cut-At" // position of the marker of that cut (0: none)
	hdrMark     = "Evt-Mark"   // "delete" or "truncate" on a marker
	hdrPrev     = "Evt-Prev"   // previous event's position, or -K: K messages back in the same batch
	hdrTime     = "Evt-Time"   // the event's time (unix ns) when it is not the server's (evt import)
	hdrDataLen  = "Evt-Data-Len"
	hdrBatchLen = "Evt-Batch-Len" // messages in the atomic batch, on each of them
	hdrLast     = "Evt-Last"      // markers: the last event's position
	hdrLastType = "Evt-Last-Type"
	hdrLastTime = "Evt-Last-Time"

	hdrMsgID       = "Nats-Msg-Id"
	hdrExpSubjSeq  = "Nats-Expected-Last-Subject-Sequence"
	hdrExpSubjName = "Nats-Expected-Last-Subject-Sequence-Subject"
	hdrExpLastSeq  = "Nats-Expected-Last-Sequence"
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"

	markDelete   = "delete"
	markTruncate = "truncate"
)

// entry is one stored message decoded.
type entry struct {
	seq                 uint64
	stream              string
	version, cut, cutAt uint64
	prev                uint64
	mark                string
	typ, id             string
	time                int64 // the event's time, unix ns
	batchEnd            uint64
	data, meta          []byte
	lastPos             uint64 // markers
	lastType            string
	lastTime            int64
}

// decode reads an entry from a stored message; ok is false for a message
// that is not evt's.
func (s *Store) decode(subject string, seq uint64, h nats.Header, data []byte, stamp time.Time) (entry, bool) {
	e := entry{seq: seq, stream: s.streamOf(subject)}
	if e.stream == "" || h == nil || h.Get(hdrVersion) == "" {
		return e, false
	}
	e.version = headerUint(h, hdrVersion)
	e.cut = headerUint(h, hdrCut)
	e.cutAt = headerUint(h, hdrCutAt)
	e.mark = h.Get(hdrMark)
	e.typ = h.Get(hdrType)
	e.id = h.Get(hdrID)
	if p := h.Get(hdrPrev); strings.HasPrefix(p, "-") {
		k, _ := strconv.ParseUint(p[1:], 10, 64)
		if k < seq {
			e.prev = seq - k
		}
	} else if p != "" {
		e.prev, _ = strconv.ParseUint(p, 10, 64)
	}
	e.time = stamp.UnixNano()
	if t := h.Get(hdrTime); t != "" {
		e.time, _ = strconv.ParseInt(t, 10, 64)
	}
	if n := headerUint(h, hdrBatchLen); n > 1 {
		if k := headerUint(h, hdrBatchSeq); k >= 1 && k <= n && k <= seq {
			e.batchEnd = seq - k + n
		}
	}
	if e.mark != "" {
		e.lastPos = headerUint(h, hdrLast)
		e.lastType = h.Get(hdrLastType)
		t, _ := strconv.ParseInt(h.Get(hdrLastTime), 10, 64)
		e.lastTime = t
	}
	if len(data) > 0 {
		n := int(headerUint(h, hdrDataLen))
		const pre, mid = `{"data":`, `,"metadata":`
		if len(data) >= len(pre)+n+1 && bytes.HasPrefix(data, []byte(pre)) {
			e.data = data[len(pre) : len(pre)+n]
			if rest := data[len(pre)+n:]; bytes.HasPrefix(rest, []byte(mid)) {
				e.meta = rest[len(mid) : len(rest)-1]
			}
		}
	}
	return e, true
}

// payload is the body of an event's message: {"data":D} or
// {"data":D,"metadata":M}; Evt-Data-Len gives len(D), so a reader slices
// rather than parses.
func payload(data, meta []byte) []byte {
	b := make([]byte, 0, len(data)+len(meta)+24)
	b = append(b, `{"data":`...)
	b = append(b, data...)
	if len(meta) > 0 {
		b = append(b, `,"metadata":`...)
		b = append(b, meta...)
	}
	return append(b, '}')
}

// head is what the last message of a stream's subject says of it.
type head struct {
	seq          uint64 // the subject's last message (0: the stream never existed)
	version, cut uint64
	cutAt        uint64
	deleted      bool
	last         uint64 // the last event (not marker): position, type, time
	lastType     string
	lastTime     int64
}

func headOf(e *entry) head {
	h := head{seq: e.seq, version: e.version, cut: e.cut, cutAt: e.cutAt, last: e.seq, lastType: e.typ, lastTime: e.time}
	if e.mark != "" {
		h.cutAt = e.seq
		h.deleted = e.mark == markDelete
		h.last, h.lastType, h.lastTime = e.lastPos, e.lastType, e.lastTime
	}
	return h
}

// present reports whether the stream has an event a read could yield,
// retention aside.
func (h head) present() bool { return h.seq != 0 && !h.deleted && h.version > h.cut }

func (h head) info(stream string) log.StreamInfo {
	return log.StreamInfo{Stream: stream, Version: h.version, Cut: h.cut, Deleted: h.deleted,
		Last: h.last, LastType: h.lastType, LastTime: time.Unix(0, h.lastTime).UTC()}
}

// record fills rec from e for a reader; the slices alias e.
func (e *entry) record(rec *codec.Record) {
	*rec = codec.Record{Position: e.seq, Version: e.version, Prev: e.prev, Time: e.time,
		Stream: []byte(e.stream), Type: []byte(e.typ), ID: []byte(e.id), Data: e.data, Metadata: e.meta}
	rec.Size = codec.RecordSize(e.stream, e.typ, e.id, e.data, e.meta)
}

func u64(n uint64) string { return strconv.FormatUint(n, 10) }

func (h head) String() string {
	return fmt.Sprintf("seq %d version %d cut %d", h.seq, h.version, h.cut)
}
