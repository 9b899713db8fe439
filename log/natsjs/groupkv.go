package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/log"
)

// The raw JetStream and KV operations groups need.

func (s *Store) kvStream() string { return "KV_" + s.bucket() }

func (s *Store) kvSubject(key string) string { return "$KV." + s.bucket() + "." + key }

// ensureTTL makes sure the meta bucket exists and takes per-key TTLs
// (AllowMsgTTL; a bucket made before groups is updated once).
func (g *Group) ensureTTL(ctx context.Context) error {
	if g.ttl {
		return nil
	}
	s := g.s
	if _, err := s.kv(ctx); err != nil {
		return err
	}
	st, err := s.js.Stream(ctx, s.kvStream())
	if err != nil {
		return s.wrap("open the bucket "+s.bucket(), err)
	}
	if cfg := st.CachedInfo().Config; !cfg.AllowMsgTTL {
		cfg.AllowMsgTTL = true
		if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
			return s.wrap("allow per-key TTLs in the bucket "+s.bucket(), err)
		}
	}
	g.ttl = true
	return nil
}

// kvPutJSON stores v at key; with ttl > 0 the key vanishes after it
// (at least a second, as the server's TTLs are).
func (s *Store) kvPutJSON(ctx context.Context, key string, v any, ttl time.Duration) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(s.kvSubject(key))
	msg.Data = data
	if ttl > 0 {
		msg.Header.Set("Nats-TTL", strconv.FormatInt(int64(max(ttl, time.Second)+time.Second-1)/int64(time.Second), 10)+"s")
	}
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			if _, kerr := s.kv(ctx); kerr != nil {
				return kerr
			}
			if _, err = s.js.PublishMsg(ctx, msg); err == nil {
				return nil
			}
		}
		return s.wrap("write "+key, err)
	}
	return nil
}

// kvGetJSON reads key into v; ok is false when it has no value.
func (s *Store) kvGetJSON(ctx context.Context, key string, v any) (rev uint64, ok bool, err error) {
	data, rev, err := s.kvGet(ctx, key)
	if err != nil || data == nil {
		return 0, false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return 0, false, fmt.Errorf("nats: key %s of %s: %w", key, s.bucket(), err)
	}
	return rev, true, nil
}

// kvUpdateJSON stores v at key if the key is still at revision rev (0:
// has no value); ok is false when another writer got in first.
func (s *Store) kvUpdateJSON(ctx context.Context, key string, v any, rev uint64) (bool, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	return s.kvPut(ctx, key, data, rev)
}

// kvPurge removes every message of the keys filter matches, leaving no
// delete marker (a key listing then shows none of them).
func (s *Store) kvPurge(ctx context.Context, filter string) error {
	var resp apiResponse
	err := s.request(ctx, s.api+"STREAM.PURGE."+s.kvStream(), map[string]string{"filter": s.kvSubject(filter)}, &resp)
	if errCode(err) == errStreamNotFound {
		return nil
	}
	if err != nil {
		return s.wrap("remove "+filter, err)
	}
	return nil
}

// kvKeys lists the keys that filter matches and that hold a message
// now, from the bucket's stream state (one request).
func (s *Store) kvKeys(ctx context.Context, filter string) ([]string, error) {
	var resp struct {
		apiResponse
		State struct {
			Subjects map[string]uint64 `json:"subjects"`
		} `json:"state"`
	}
	err := s.request(ctx, s.api+"STREAM.INFO."+s.kvStream(), map[string]string{"subjects_filter": s.kvSubject(filter)}, &resp)
	if errCode(err) == errStreamNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, s.wrap("list "+filter, err)
	}
	pre := s.kvSubject("")
	out := make([]string, 0, len(resp.State.Subjects))
	for subj := range resp.State.Subjects {
		out = append(out, strings.TrimPrefix(subj, pre))
	}
	return out, nil
}

// ackReplies sends body (+ACK, -NAK, +WPI, +TERM) to each reply subject
// and waits until the server has applied them: an ack sent without
// waiting may be applied after the next pull, which would find the
// partition still busy. The server answers nothing for an ack of a
// message it no longer holds; such answers are waited for only briefly.
func (s *Store) ackReplies(ctx context.Context, replies []string, body []byte) error {
	if len(replies) == 0 {
		return nil
	}
	inbox := s.nc.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer sub.Unsubscribe()
	for _, r := range replies {
		if err := s.nc.PublishMsg(&nats.Msg{Subject: r, Reply: inbox, Data: body}); err != nil {
			return fmt.Errorf("nats: answer a delivery: %w", err)
		}
	}
	wait := min(s.opts.Timeout, time.Second)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for range replies {
		if _, err := sub.NextMsgWithContext(wctx); err != nil {
			break // not held any more (see above), or no answer: redelivery covers it
		}
	}
	return nil
}

// consumerInfos reads the state of several consumers, the requests sent
// at once; a consumer that is gone is ErrNotFound.
func (s *Store) consumerInfos(ctx context.Context, names []string) ([]*consumerState, error) {
	inbox := s.nc.NewInbox()
	ch := make(chan *nats.Msg, len(names))
	sub, err := s.nc.ChanSubscribe(inbox+".*", ch)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	defer sub.Unsubscribe()
	for i, name := range names {
		if err := s.nc.PublishMsg(&nats.Msg{Subject: s.api + "CONSUMER.INFO." + s.name + "." + name, Reply: inbox + "." + strconv.Itoa(i)}); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
	}
	out := make([]*consumerState, len(names))
	timer := time.NewTimer(s.opts.Timeout)
	defer timer.Stop()
	for left := len(names); left > 0; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, s.wrap("read the group's consumers", context.DeadlineExceeded)
		case m := <-ch:
			i, err := strconv.Atoi(m.Subject[len(inbox)+1:])
			if err != nil || i >= len(out) || out[i] != nil {
				continue
			}
			var resp struct {
				apiResponse
				consumerState
			}
			if len(m.Data) == 0 {
				return nil, fmt.Errorf("%w: consumer %s (JetStream gave no answer)", log.ErrNotFound, names[i])
			}
			if err := json.Unmarshal(m.Data, &resp); err != nil {
				return nil, fmt.Errorf("nats: bad answer from the server: %w", err)
			}
			if resp.Error != nil {
				if resp.Error.ErrCode == errConsumerNotFound || resp.Error.ErrCode == errStreamNotFound {
					return nil, fmt.Errorf("%w: consumer %s", log.ErrNotFound, names[i])
				}
				return nil, s.wrap("read consumer "+names[i], resp.Error)
			}
			out[i] = &resp.consumerState
			left--
		}
	}
	return out, nil
}

// delivered is one message a pull handed out.
type delivered struct {
	consumer  string
	reply     string
	seq       uint64
	count     int    // the server's delivery count
	pending   uint64 // what the consumer has left after it
	subject   string
	header    nats.Header
	data      []byte
	timestamp time.Time
}

// parseAckReply reads the ack subject of a delivery:
// $JS.ACK.<stream>.<consumer>.<count>.<sseq>.<cseq>.<ts>.<pending>, or
// with domain and account hash after $JS.ACK.
func parseAckReply(reply string) (consumer string, count int, seq uint64, ts time.Time, ok bool) {
	a, ok := parseAck(reply)
	return a.consumer, a.count, a.seq, a.ts, ok
}

// ackInfo is what an ack subject says of its delivery.
type ackInfo struct {
	consumer string
	count    int
	seq      uint64
	ts       time.Time
	pending  uint64 // messages the consumer has left after this one
}

func parseAck(reply string) (ackInfo, bool) {
	t := strings.Split(reply, ".")
	off := 0
	switch {
	case len(t) == 9:
		off = 2
	case len(t) >= 11:
		off = 4
	default:
		return ackInfo{}, false
	}
	c, err1 := strconv.Atoi(t[off+2])
	sq, err2 := strconv.ParseUint(t[off+3], 10, 64)
	ns, err3 := strconv.ParseInt(t[off+5], 10, 64)
	pending, err4 := strconv.ParseUint(t[off+6], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return ackInfo{}, false
	}
	return ackInfo{consumer: t[off+1], count: c, seq: sq, ts: time.Unix(0, ns), pending: pending}, true
}

// pullReq asks one consumer for up to batch messages.
type pullReq struct {
	consumer string
	batch    int
}

// pull sends every request at once and gathers what they deliver: each
// request takes what is there now, waits at most wait for a message that
// is due (a partition whose one event is held waits that long), and ends
// with the server's status. idle lists the consumers whose request
// brought nothing. A consumer that is gone is ErrNotFound.
func (s *Store) pull(ctx context.Context, reqs []pullReq, wait time.Duration) (out []delivered, idle []string, err error) {
	if len(reqs) == 0 {
		return nil, nil, nil
	}
	inbox := s.nc.NewInbox()
	room := len(reqs) // every message asked for, and each request's status, fit
	for _, r := range reqs {
		room += r.batch
	}
	ch := make(chan *nats.Msg, room)
	sub, err := s.nc.ChanSubscribe(inbox+".*", ch)
	if err != nil {
		return nil, nil, fmt.Errorf("nats: %w", err)
	}
	defer sub.Unsubscribe()
	open := map[string]int{}          // reply token → messages still wanted
	byConsumer := map[string]string{} // consumer → reply token
	for i, r := range reqs {
		body, _ := json.Marshal(map[string]any{"batch": r.batch, "no_wait": true, "expires": wait.Nanoseconds()})
		tok := strconv.Itoa(i)
		open[tok] = r.batch
		byConsumer[r.consumer] = tok
		if err := s.nc.PublishMsg(&nats.Msg{Subject: s.api + "CONSUMER.MSG.NEXT." + s.name + "." + r.consumer, Reply: inbox + "." + tok, Data: body}); err != nil {
			return nil, nil, fmt.Errorf("nats: pull: %w", err)
		}
	}
	timer := time.NewTimer(wait + s.opts.Timeout)
	defer timer.Stop()
	for len(open) > 0 {
		select {
		case <-ctx.Done():
			return out, idle, ctx.Err()
		case <-timer.C:
			return out, idle, nil // a request the server never ended: what came is what there is
		case m := <-ch:
			if status := m.Header.Get("Status"); status != "" && len(m.Data) == 0 {
				// A status comes to the request's own reply subject.
				tok, ok := strings.CutPrefix(m.Subject, inbox+".")
				if _, open2 := open[tok]; !ok || !open2 {
					continue
				}
				i, _ := strconv.Atoi(tok)
				if open[tok] == reqs[i].batch {
					idle = append(idle, reqs[i].consumer)
				}
				delete(open, tok)
				if status == "503" {
					return out, idle, fmt.Errorf("%w: group %s was removed", log.ErrNotFound, groupOfConsumer(reqs[i].consumer))
				}
				continue
			}
			// A message keeps its own subject: its consumer tells the
			// request (one per consumer).
			a, ok := parseAck(m.Reply)
			if !ok {
				continue
			}
			cons := a.consumer
			tok := byConsumer[cons]
			left, ok := open[tok]
			if !ok {
				continue
			}
			out = append(out, delivered{consumer: cons, reply: m.Reply, seq: a.seq, count: a.count, pending: a.pending, subject: m.Subject, header: m.Header, data: m.Data, timestamp: a.ts})
			if left--; left == 0 {
				delete(open, tok)
			} else {
				open[tok] = left
			}
		}
	}
	return out, idle, nil
}
