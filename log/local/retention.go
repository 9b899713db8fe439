package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log/atomicfile"
)

// Retention is the store's retention policy: rules per stream selection,
// and a limit on the size of the whole log. It is small state of its own
// (DIR/retention.json, replaced atomically under the append lock), not
// derived from the log.
//
// Limits apply to reads at once: an event a limit removes is never printed,
// folded or delivered again. `evt compact` reclaims the space later.
type Retention struct {
	Rules []Rule `json:"rules,omitempty"`
	// MaxBytes bounds the log's segment files: the oldest sealed segments
	// are removed while the rest exceeds it. 0: no limit.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// AutoCompact asks the appender that seals a segment to start a
	// compaction in the background (evt compact --auto on).
	AutoCompact bool `json:"auto_compact,omitempty"`
}

// Rule limits the streams its selection matches. Every rule that matches
// a stream applies; the strictest wins.
type Rule struct {
	Selection string        `json:"selection"`
	MaxAge    time.Duration `json:"max_age,omitempty"`   // events older than this are removed
	MaxCount  uint64        `json:"max_count,omitempty"` // a stream keeps its newest MaxCount events
	// UntilAcked makes the streams a message queue: an event is removed
	// once every consumer group whose selection matches its stream has
	// acked it (and everything before it). With no such group, events
	// stay.
	UntilAcked bool `json:"until_acked,omitempty"`
}

const retentionFile = "retention.json"

// Retention reads the store's retention policy.
func (s *Store) Retention() (Retention, error) {
	p := join(s.dir, retentionFile)
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		s.retention = retentionCache{}
		return Retention{}, nil
	}
	if err != nil {
		return Retention{}, err
	}
	if c := s.retention; c.valid && c.mod.Equal(st.ModTime()) && c.size == st.Size() && c.ino == inode(st) {
		return c.r, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return Retention{}, err
	}
	r, err := decodeRetention(b)
	if err != nil {
		return Retention{}, err
	}
	s.retention = retentionCache{valid: true, mod: st.ModTime(), size: st.Size(), ino: inode(st), r: r}
	return r, nil
}

// decodeRetention reads retention.json. A file evt did not write (bad
// JSON, a bad selection, a negative limit) is a *CorruptError: a policy
// that cannot be read must not be guessed, or reads would show events
// that should be gone, or hide ones that should not.
func decodeRetention(b []byte) (Retention, error) {
	var r Retention
	bad := func(reason string) (Retention, error) {
		return Retention{}, &CorruptError{File: retentionFile, Offset: -1, Reason: reason}
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return bad(err.Error())
	}
	if len(r.Rules) == 0 {
		r.Rules = nil // "rules": [] and no rules are one policy
	}
	if r.MaxBytes < 0 {
		return bad(fmt.Sprintf("max_bytes %d is negative", r.MaxBytes))
	}
	for _, rule := range r.Rules {
		if _, err := codec.ParseSelection(rule.Selection); err != nil {
			return bad(err.Error())
		}
		if rule.MaxAge < 0 {
			return bad(fmt.Sprintf("rule %s: max_age %d is negative", rule.Selection, rule.MaxAge))
		}
	}
	return r, nil
}

// retentionCache keeps the parsed policy while its file is unchanged: a
// follower builds a view of the limits on every wake-up.
type retentionCache struct {
	valid bool
	mod   time.Time
	size  int64
	ino   uint64
	r     Retention
}

// UpdateRetention changes the policy under the append lock.
func (s *Store) UpdateRetention(fn func(r *Retention) error) error {
	if s.lock == nil {
		return errors.New("changing retention needs a store opened for writing")
	}
	if err := s.lock.acquire(s.opts.LockTimeout); err != nil {
		return err
	}
	defer s.lock.release()
	r, err := s.Retention()
	if err != nil {
		return err
	}
	r.Rules = append([]Rule(nil), r.Rules...)
	if err := fn(&r); err != nil {
		return err
	}
	sort.Slice(r.Rules, func(i, j int) bool { return r.Rules[i].Selection < r.Rules[j].Selection })
	b, err := json.MarshalIndent(&r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(join(s.dir, retentionFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write retention: %w", err)
	}
	s.retention = retentionCache{}
	return nil
}
