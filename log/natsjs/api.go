package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream API error codes evt acts on (nats-server errors.json).
const (
	errNoMessage        = 10037 // no message found
	errStreamNotFound   = 10059
	errWrongLastSeq     = 10071 // an expected-last-sequence check failed
	errWrongLastSeqBusy = 10164 // the same, clustered: another proposal on the subject is in flight
	errBatchIncomplete  = 10176
	errBatchTooLarge    = 10199
	errBatchDuplicateID = 10201 // an atomic batch holds an already-stored Nats-Msg-Id
	errTooManyInflight  = 10210
)

// apiError is the error of a JetStream API response.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (error %d)", e.Description, e.ErrCode)
}

// errCode is the JetStream error code err carries, 0 if none.
func errCode(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.ErrCode
	}
	var je *jetstream.APIError
	if errors.As(err, &je) {
		return int(je.ErrorCode)
	}
	return 0
}

// request sends one JetStream API request and decodes the answer into
// resp, whose Error field (an *apiError) is returned as the error.
func (s *Store) request(ctx context.Context, subject string, req any, resp interface{ apiErr() *apiError }) error {
	var body []byte
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return err
		}
	}
	var msg *nats.Msg
	err := untilAnswered(ctx, func() (err error) {
		msg, err = s.nc.RequestWithContext(ctx, subject, body)
		return err
	})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("bad answer from the server: %w", err)
	}
	if e := resp.apiErr(); e != nil {
		return e
	}
	return nil
}

type apiResponse struct {
	Error *apiError `json:"error,omitempty"`
}

func (r *apiResponse) apiErr() *apiError { return r.Error }

// streamInfo reads the stream's configuration and state from its leader.
func (s *Store) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	st, err := s.js.Stream(ctx, s.name)
	if err != nil {
		return nil, err
	}
	return st.CachedInfo(), nil
}

// streamState is the part of the stream's state evt reads.
type streamState struct {
	First, Last uint64 // sequences; First = Last+1 when empty
	Msgs        uint64
	Bytes       uint64
}

// caughtUp waits, on a replicated stream, until every replica has what
// the leader has now, for at most a second. A consumer (what reads
// through many messages use) is placed on any replica and reads that
// replica's copy: without this, a read right after an append or purge
// acknowledged by a quorum may miss the append or still see what the
// purge removed, and a consumer of each subject's last message made on a
// replica that has nothing yet waits for the next append instead.
//
// A replica the leader has not heard from for replicaSilence (or at all,
// since it became leader) is down, not slow: waiting for it would cost
// every read its full second while a node is dead (the server marks it
// offline only much later), and a consumer is not placed on it.
func (s *Store) caughtUp(ctx context.Context) error {
	if s.replicas <= 1 {
		return nil
	}
	deadline := time.Now().Add(time.Second)
	for {
		var resp struct {
			apiResponse
			Cluster *struct {
				Replicas []struct {
					Current bool          `json:"current"`
					Lag     uint64        `json:"lag"`
					Offline bool          `json:"offline"`
					Active  time.Duration `json:"active"` // since the leader last heard from it; 0: not yet
				} `json:"replicas"`
			} `json:"cluster"`
		}
		if err := s.request(ctx, s.api+"STREAM.INFO."+s.name, nil, &resp); err != nil {
			return err
		}
		behind := false
		if resp.Cluster != nil {
			for _, r := range resp.Cluster.Replicas {
				down := r.Offline || r.Active == 0 || r.Active > replicaSilence
				if !down && (!r.Current || r.Lag > 0) {
					behind = true
				}
			}
		}
		if !behind || time.Now().After(deadline) {
			return nil // a replica that stays behind is down or slow: read on
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// replicaSilence is how long the stream's leader may go without a word
// from a replica that is up: three of the servers' Raft heartbeats (1 s
// each), the interval after which the server itself stops calling the
// leader of a group current.
const replicaSilence = 3 * time.Second

// state reads the stream's sequence bounds from its leader. A stream not
// yet created is empty.
func (s *Store) state(ctx context.Context) (streamState, error) {
	var resp struct {
		apiResponse
		State struct {
			Msgs     uint64 `json:"messages"`
			Bytes    uint64 `json:"bytes"`
			FirstSeq uint64 `json:"first_seq"`
			LastSeq  uint64 `json:"last_seq"`
		} `json:"state"`
	}
	err := s.request(ctx, s.api+"STREAM.INFO."+s.name, nil, &resp)
	if errCode(err) == errStreamNotFound {
		return streamState{First: 1}, nil
	}
	if err != nil {
		return streamState{}, err
	}
	st := streamState{First: resp.State.FirstSeq, Last: resp.State.LastSeq, Msgs: resp.State.Msgs, Bytes: resp.State.Bytes}
	if st.Msgs == 0 || st.First == 0 {
		st.First = st.Last + 1
	}
	return st, nil
}

// msgGetRequest is a STREAM.MSG.GET request.
type msgGetRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	LastFor  string `json:"last_by_subj,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	NoHeader bool   `json:"no_hdr,omitempty"`
	// StartTime, with NextFor, asks for the first message at or after it.
	StartTime *time.Time `json:"start_time,omitempty"`
}

// storedMsg is one message as the server stored it.
type storedMsg struct {
	Subject string
	Seq     uint64
	Header  nats.Header
	Data    []byte
	Time    time.Time
}

// getMsg fetches one message through the stream's leader: unlike a
// direct get, which any replica may answer, it sees every write already
// acknowledged (read-your-writes). It returns nil and no error when
// there is no such message (or no stream yet).
func (s *Store) getMsg(ctx context.Context, req msgGetRequest) (*storedMsg, error) {
	var resp struct {
		apiResponse
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs,omitempty"`
			Data    []byte    `json:"data,omitempty"`
			Time    time.Time `json:"time"`
		} `json:"message"`
	}
	err := s.request(ctx, s.api+"STREAM.MSG.GET."+s.name, req, &resp)
	if c := errCode(err); c == errNoMessage || c == errStreamNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m := resp.Message
	if m == nil {
		return nil, nil
	}
	out := &storedMsg{Subject: m.Subject, Seq: m.Seq, Data: m.Data, Time: m.Time}
	if len(m.Header) > 0 {
		if out.Header, err = nats.DecodeHeadersMsg(m.Header); err != nil {
			return nil, fmt.Errorf("bad headers of message %d: %w", m.Seq, err)
		}
	}
	return out, nil
}

// pubAck is the answer to a publish into the stream.
type pubAck struct {
	apiResponse
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Batch     string `json:"batch,omitempty"`
	Count     int    `json:"count,omitempty"`
}

// untilAnswered runs try again while no server answers it (no
// responders): on a cluster, a stream just created by another process
// or whose leader died has no leader until one is elected, and its
// requests reach no one meanwhile. Nothing received such a request, so
// sending it again is exact. It stops when ctx ends, with the last
// error.
func untilAnswered(ctx context.Context, try func() error) error {
	wait := 5 * time.Millisecond
	for {
		err := try()
		if !errors.Is(err, nats.ErrNoResponders) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// publish sends msg and waits for the stream's acknowledgement.
func (s *Store) publish(ctx context.Context, msg *nats.Msg) (*pubAck, error) {
	reply, err := s.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, err
	}
	var ack pubAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return nil, fmt.Errorf("bad acknowledgement from the server: %w", err)
	}
	if ack.Error != nil {
		return nil, ack.Error
	}
	if ack.Seq == 0 {
		return nil, fmt.Errorf("acknowledgement without a sequence: %s", reply.Data)
	}
	return &ack, nil
}

// purge removes the messages of subject below seq (keeping seq and
// later) through the leader.
func (s *Store) purge(ctx context.Context, subject string, below uint64) error {
	_, err := s.purgeCount(ctx, subject, below)
	return err
}

// purgeCount is purge, returning how many messages the server removed.
func (s *Store) purgeCount(ctx context.Context, subject string, below uint64) (uint64, error) {
	req := struct {
		Subject string `json:"filter,omitempty"`
		Seq     uint64 `json:"seq,omitempty"`
	}{subject, below}
	var resp struct {
		apiResponse
		Purged uint64 `json:"purged"`
	}
	err := s.request(ctx, s.api+"STREAM.PURGE."+s.name, req, &resp)
	return resp.Purged, err
}

func headerUint(h nats.Header, key string) uint64 {
	v := h.Get(key)
	if v == "" {
		return 0
	}
	n, _ := strconv.ParseUint(v, 10, 64)
	return n
}
