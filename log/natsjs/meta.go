package natsjs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/log"
)

// The store's small state (retention rules, fold snapshots) lives in one
// KV bucket, EVT_<stream>_META, created by the first write of it: a KV
// bucket is a JetStream stream too, so it is replicated with the log.
// Reads go through the bucket's leader, like heads, so that a rule set by
// one process holds for the next read of any other at once.

const (
	keyRetention = "retention"
	kvOpHeader   = "KV-Operation"
)

func (s *Store) bucket() string { return "EVT_" + s.name + "_META" }

// kvGet reads a key through the bucket's leader: its value and revision,
// or nil and 0 when it has none.
func (s *Store) kvGet(ctx context.Context, key string) ([]byte, uint64, error) {
	var resp struct {
		apiResponse
		Message *struct {
			Seq    uint64 `json:"seq"`
			Header []byte `json:"hdrs,omitempty"`
			Data   []byte `json:"data,omitempty"`
		} `json:"message"`
	}
	req := msgGetRequest{LastFor: "$KV." + s.bucket() + "." + key}
	err := s.request(ctx, s.api+"STREAM.MSG.GET.KV_"+s.bucket(), req, &resp)
	if c := errCode(err); c == errNoMessage || c == errStreamNotFound {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, s.wrap("read "+key, err)
	}
	if resp.Message == nil {
		return nil, 0, nil
	}
	if len(resp.Message.Header) > 0 {
		// A deleted or purged key keeps a marker message.
		if bytes.Contains(resp.Message.Header, []byte(kvOpHeader)) {
			return nil, resp.Message.Seq, nil
		}
	}
	return resp.Message.Data, resp.Message.Seq, nil
}

// kv opens the bucket, creating it on first use.
func (s *Store) kv(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := s.js.KeyValue(ctx, s.bucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		replicas := 1
		if info, ierr := s.streamInfo(ctx); ierr == nil {
			replicas = info.Config.Replicas
		}
		kv, err = s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: s.bucket(), Description: "evt store " + s.name + ": retention rules, fold snapshots",
			History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = s.js.KeyValue(ctx, s.bucket())
		}
	}
	if err != nil {
		return nil, s.wrap("open the bucket "+s.bucket(), err)
	}
	return kv, nil
}

// kvPut stores value at key if the key is still at revision rev (0: the
// key has no value); ok is false when another writer got in first.
func (s *Store) kvPut(ctx context.Context, key string, value []byte, rev uint64) (ok bool, err error) {
	kv, err := s.kv(ctx)
	if err != nil {
		return false, err
	}
	if rev == 0 {
		_, err = kv.Create(ctx, key, value)
	} else {
		_, err = kv.Update(ctx, key, value, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errCode(err) == errWrongLastSeq {
		return false, nil
	}
	if err != nil {
		return false, s.wrap("write "+key, err)
	}
	return true, nil
}

func (s *Store) retention(ctx context.Context) (log.Retention, error) {
	var r log.Retention
	v, _, err := s.kvGet(ctx, keyRetention)
	if err != nil || v == nil {
		return r, err
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("nats: the retention rules in %s: %w", s.bucket(), err)
	}
	return r, nil
}

// Retention returns the retention policy (log.Store).
func (s *Store) Retention() (log.Retention, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.retention(ctx)
}

// UpdateRetention applies fn to the policy and stores it with a
// compare-and-set on the key's revision, so two updates never lose one
// (log.Store). Rules take effect for reads at once: every read reads them.
func (s *Store) UpdateRetention(fn func(r *log.Retention) error) error {
	for {
		ctx, cancel := s.ctx()
		v, rev, err := s.kvGet(ctx, keyRetention)
		if err != nil {
			cancel()
			return err
		}
		var r log.Retention
		if v != nil {
			if err := json.Unmarshal(v, &r); err != nil {
				cancel()
				return fmt.Errorf("nats: the retention rules in %s: %w", s.bucket(), err)
			}
		}
		if err := fn(&r); err != nil {
			cancel()
			return err
		}
		if err := unkeptRetention(r); err != nil {
			cancel()
			return err
		}
		// Rules in selection order, as the local store keeps them.
		sort.Slice(r.Rules, func(i, j int) bool { return r.Rules[i].Selection < r.Rules[j].Selection })
		data, err := json.Marshal(r)
		if err != nil {
			cancel()
			return err
		}
		ok, err := s.kvPut(ctx, keyRetention, data, rev)
		cancel()
		if err != nil || ok {
			return err
		}
	}
}

// snapshot is a fold snapshot as the bucket holds it.
type snapshot struct {
	Stream      string    `json:"stream"`
	Fingerprint string    `json:"fingerprint"`
	Version     uint64    `json:"version"`
	Position    uint64    `json:"position"`
	State       []byte    `json:"state"`
	Created     time.Time `json:"store_created"` // the JetStream stream's: a recreated store has other positions
}

func snapshotKey(fingerprint, stream string) string {
	h := sha256.Sum256([]byte(fingerprint + "\x00" + stream))
	return "snap." + base64.RawURLEncoding.EncodeToString(h[:])[:22]
}

// LoadSnapshot returns a saved snapshot while it still matches the log:
// the stream is there, has the version the snapshot folded through, and
// was not cut since (log.Store).
func (s *Store) LoadSnapshot(fingerprint, stream string) (log.Snapshot, bool) {
	ctx, cancel := s.ctx()
	defer cancel()
	v, _, err := s.kvGet(ctx, snapshotKey(fingerprint, stream))
	if err != nil || v == nil {
		return log.Snapshot{}, false
	}
	var snap snapshot
	if json.Unmarshal(v, &snap) != nil || snap.Stream != stream || snap.Fingerprint != fingerprint || !snap.Created.Equal(s.created) {
		return log.Snapshot{}, false
	}
	h, err := s.head(ctx, stream)
	if err != nil || !h.present() || h.version < snap.Version || h.cutAt > snap.Position || h.cut >= snap.Version {
		return log.Snapshot{}, false
	}
	return log.Snapshot{Version: snap.Version, Position: snap.Position, State: snap.State}, true
}

// SaveSnapshot stores a snapshot in the bucket, replacing the last
// (log.Store).
func (s *Store) SaveSnapshot(fingerprint, stream string, snap log.Snapshot) error {
	ctx, cancel := s.ctx()
	defer cancel()
	data, err := json.Marshal(snapshot{Stream: stream, Fingerprint: fingerprint, Version: snap.Version,
		Position: snap.Position, State: snap.State, Created: s.created})
	if err != nil {
		return err
	}
	kv, err := s.kv(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, snapshotKey(fingerprint, stream), data); err != nil {
		return s.wrap("save a snapshot", err)
	}
	return nil
}

// unkeptRetention refuses the parts of a policy this store does not
// keep yet, rather than store a rule nothing would apply: until-acked
// queues (reads, groups and the compaction sweep would have to honour
// every group's ack floor) and a byte bound of the log (JetStream's own
// max_bytes would remove streams' newest events).
func unkeptRetention(r log.Retention) error {
	if r.MaxBytes > 0 {
		return unkept("--max-bytes is not supported by a nats store")
	}
	for _, rule := range r.Rules {
		if rule.UntilAcked {
			return unkept("--until-acked is not supported by a nats store yet (rule " + rule.Selection + ")")
		}
	}
	return nil
}

// unkept is an error that says only what (exit 2: log.ErrUnsupported).
type unkept string

func (e unkept) Error() string { return string(e) }
func (e unkept) Unwrap() error { return log.ErrUnsupported }
