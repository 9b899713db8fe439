package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/atomicfile"
	"github.com/evtdev/evt/log/local/vfs"
)

const retentionFile = "retention.json"

// Retention reads the store's retention policy.
func (s *Store) Retention() (log.Retention, error) {
	p := join(s.dir, retentionFile)
	st, err := s.fsys.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		s.retention = retentionCache{}
		return log.Retention{}, nil
	}
	if err != nil {
		return log.Retention{}, err
	}
	if c := s.retention; c.valid && c.mod.Equal(st.ModTime()) && c.size == st.Size() && c.ino == inode(st) {
		return c.r, nil
	}
	b, err := vfs.ReadFile(s.fsys, p)
	if err != nil {
		return log.Retention{}, err
	}
	r, err := decodeRetention(b)
	if err != nil {
		return log.Retention{}, err
	}
	s.retention = retentionCache{valid: true, mod: st.ModTime(), size: st.Size(), ino: inode(st), r: r}
	return r, nil
}

// decodeRetention reads retention.json. A file evt did not write (bad
// JSON, a bad selection, a negative limit) is a *CorruptError: a policy
// that cannot be read must not be guessed, or reads would show events
// that should be gone, or hide ones that should not.
func decodeRetention(b []byte) (log.Retention, error) {
	var r log.Retention
	bad := func(reason string) (log.Retention, error) {
		return log.Retention{}, &log.CorruptError{File: retentionFile, Offset: -1, Reason: reason}
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
		if rule.Archive != "" && !filepath.IsAbs(rule.Archive) {
			return bad(fmt.Sprintf("rule %s: archive %q is not an absolute path", rule.Selection, rule.Archive))
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
	r     log.Retention
}

// UpdateRetention changes the policy under the append lock.
func (s *Store) UpdateRetention(fn func(r *log.Retention) error) error {
	if s.lock == nil {
		return errors.New("changing retention needs a store opened for writing")
	}
	if err := s.lock.acquire(context.Background(), s.opts.LockTimeout); err != nil {
		return err
	}
	defer s.lock.release()
	r, err := s.Retention()
	if err != nil {
		return err
	}
	r.Rules = append([]log.Rule(nil), r.Rules...)
	if err := fn(&r); err != nil {
		return err
	}
	sort.Slice(r.Rules, func(i, j int) bool { return r.Rules[i].Selection < r.Rules[j].Selection })
	b, err := json.MarshalIndent(&r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFS(s.fsys, join(s.dir, retentionFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write retention: %w", err)
	}
	s.retention = retentionCache{}
	return nil
}
