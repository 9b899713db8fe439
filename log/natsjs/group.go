package natsjs

import (
	"context"
	"fmt"

	"github.com/evtdev/evt/log"
)

// Consumer groups on JetStream (durable pull consumers per partition,
// parked events and member heartbeats in the meta KV bucket; see
// ../shared/SCALEOUT.md section 3) are not built yet: every group call
// fails with ErrUnsupported, so evt group and evt consume exit 2 saying
// so, and the conformance suite's group cases skip.

func errNoGroups() error {
	return fmt.Errorf("consumer groups are %w (a nats store has none yet)", log.ErrUnsupported)
}

// CreateGroup is not supported yet.
func (s *Store) CreateGroup(ctx context.Context, cfg log.GroupConfig, start uint64) error {
	return errNoGroups()
}

// OpenGroup is not supported yet.
func (s *Store) OpenGroup(ctx context.Context, name string) (log.Group, error) {
	return nil, errNoGroups()
}

// Groups lists no groups: a nats store has none yet.
func (s *Store) Groups(ctx context.Context) ([]string, error) { return nil, nil }

// RemoveGroup is not supported yet.
func (s *Store) RemoveGroup(ctx context.Context, name string) error { return errNoGroups() }
