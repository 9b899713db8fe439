package log

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/evtdev/evt/codec"
)

// Consumer groups. A group is a named, shared cursor over a selection of
// the log. Any number of members (evt consume processes, on any host the
// store reaches) share its work under these promises, which every store
// keeps:
//
//   - Each selected event goes to one member at a time, at least once: a
//     member leases it, and until the lease ends (an ack, a nack, a
//     return, the member's death, or its deadline) no other member gets it.
//   - With Ordering "stream", an event is never handed out while an
//     earlier event of its stream is leased or waiting to be handed out
//     again.
//   - After MaxDeliver deliveries that failed, an event is parked (kept
//     with its last error) and the group moves on; Retry hands it out
//     again.
//   - A member that dies (even by SIGKILL) gives its leases back within
//     seconds, not only after the ack wait.
//
// Everything a group holds in flight is the store's, not the member's: a
// member keeps nothing a restart must recover.

// GroupConfig is how a group was created; it does not change.
type GroupConfig struct {
	Name       string        `json:"name"`
	Selection  string        `json:"selection"`
	Types      []string      `json:"types,omitempty"`
	AckWait    time.Duration `json:"ack_wait"`
	MaxDeliver int           `json:"max_deliver"`
	Ordering   string        `json:"ordering"` // "stream" or "none"
	Created    time.Time     `json:"created"`
	// Partitions is how many independent lanes per-stream ordering uses
	// on a store that needs them (a stream always maps to one lane; 0:
	// the store's default). The local store orders each stream alone and
	// ignores it.
	Partitions int `json:"partitions,omitempty"`
}

// Errors of groups, wrapped with the group's name.
var (
	// ErrGroupExists: CreateGroup of a name that is taken.
	ErrGroupExists = errors.New("group already exists")
	// ErrBadGroupName: a name ValidateGroupName refuses (exit 2).
	ErrBadGroupName = errors.New("invalid group name")
)

// ValidateGroupName: 1–64 bytes of letters, digits, '-', '_' and '.', not
// starting with '.'. Every store accepts every such name (the local store
// makes it a directory name; another store escapes what it must).
func ValidateGroupName(name string) error {
	clip := name
	if len(clip) > 40 {
		clip = clip[:40] + "…"
	}
	if name == "" || len(name) > 64 || name[0] == '.' {
		return fmt.Errorf("%w %q: 1–64 characters, not starting with '.'", ErrBadGroupName, clip)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%w %q: only letters, digits, '-', '_' and '.'", ErrBadGroupName, clip)
		}
	}
	return nil
}

// GroupStore is the consumer-group half of a store.
type GroupStore interface {
	// CreateGroup makes group cfg.Name, whose first delivery will be the
	// first selected event at or after position start. It fails with
	// ErrGroupExists if the name is taken and with ErrBadGroupName if
	// ValidateGroupName refuses it. Once it returns, every process sees
	// the group.
	CreateGroup(ctx context.Context, cfg GroupConfig, start uint64) error

	// OpenGroup opens an existing group, or fails with an error wrapping
	// ErrNotFound. Opening changes nothing: only Join makes a member.
	OpenGroup(ctx context.Context, name string) (Group, error)

	// Groups lists the names of the store's groups, sorted.
	Groups(ctx context.Context) ([]string, error)

	// RemoveGroup deletes a group and everything it holds in flight
	// (the events stay in the log); ErrNotFound if there is none. Its
	// members' next call fails with ErrNotFound. Refusing to remove a
	// group with live members is the caller's choice (Status.Members).
	RemoveGroup(ctx context.Context, name string) error
}

// Group is an open consumer group. A Group is used by one goroutine at a
// time; any number of processes may hold the same group open.
type Group interface {
	// Config is how the group was created.
	Config() GroupConfig

	// Status summarises the group now (see GroupStatus). Counting the
	// lag may cost time in the events not yet done.
	Status(ctx context.Context) (GroupStatus, error)

	// Position is Status's Committed alone, without that cost.
	Position(ctx context.Context) (uint64, error)

	// Parked lists the events the group gave up on, by position.
	Parked(ctx context.Context) ([]ParkedEvent, error)

	// Retry queues parked events again (all of them when positions is
	// empty; a position that is not parked is ignored) and returns how
	// many: they are delivered again from their first delivery.
	Retry(ctx context.Context, positions ...uint64) (int, error)

	// Reset moves the group to position p: from p on, every selected
	// event is delivered again (p before the group's position) or
	// skipped (p after it). Events leased now are not taken from their
	// holders: one at or after p is delivered again once its holder is
	// done with it; parked events stay parked. With dryRun nothing
	// changes and the result says what would.
	Reset(ctx context.Context, p uint64, dryRun bool) (ResetResult, error)

	// Ack marks events handled that a manual-ack member was handed
	// (evt ack, from any process) and still holds: leased manually, the
	// deadline not passed. It returns how many it acked; anything else
	// is left alone (never delivered, acked already, past its deadline,
	// or held by a member that acks its own).
	Ack(ctx context.Context, positions ...uint64) (int, error)

	// Join makes the caller a live member of the group, until the
	// Member is closed or the process ends. Other processes see it in
	// Status.Members as soon as Join returns and never take it for dead
	// before.
	Join(ctx context.Context, opts MemberOptions) (Member, error)

	// Close releases the group (not its members: close them first).
	Close() error
}

// GroupStatus is a group's summary, as evt group ls and show print it.
type GroupStatus struct {
	// Committed is the group's position: every selected event before it
	// is done (acked, parked, or skipped by a reset).
	Committed uint64
	// Lag counts the selected events not yet done, leased ones included.
	Lag uint64
	// Oldest is the append time of the first of them (zero when Lag is
	// 0): a group stuck on an old event shows its age even when nothing
	// new arrives.
	Oldest time.Time
	// Leased counts the events handed to members now.
	Leased int
	// Parked counts the parked events.
	Parked int
	// Members lists the live members: a PID locally, HOST:PID where
	// members run on several hosts.
	Members []string
}

// ParkedEvent is an event a group gave up on.
type ParkedEvent struct {
	Position   uint64
	Stream     string
	Type       string
	Deliveries int
	Reason     string // the last delivery's error
	At         time.Time
}

// ResetResult says what a Reset did, or would do with dryRun.
type ResetResult struct {
	From, To uint64 // the group's position before and after
	// Events counts the selected events in between: delivered again when
	// To < From, skipped when To > From.
	Events uint64
}

// MemberOptions are a member's settings.
type MemberOptions struct {
	// ManualAck makes this member's leases outlive it: they end only by
	// Group.Ack (evt ack from any process) or their deadline.
	ManualAck bool
	// Poll makes Wait poll rather than use notifications (network file
	// systems).
	Poll bool
}

// Member is one live member of a group: it leases events, handles them
// and answers for each lease. A member answers only for leases it was
// handed: once a lease ended and the event went to another member (or a
// reset queued it again), this member's late answer changes nothing.
type Member interface {
	// ID names the member as Status.Members lists it.
	ID() string

	// Lease hands up to n events to this member, in position order:
	// first events waiting to be delivered again, then new ones. Before
	// that it applies acks (this member's acks, in the same step, so a
	// member that acks a batch and takes the next pays for one update),
	// reclaims expired leases and those of dead members, and parks
	// events that used up their deliveries.
	//
	// With chain, the caller handles its batch strictly in order and
	// hands a stream's rest back (Return) when one of its events fails,
	// so several events of one stream may come in one batch; without
	// it, a stream's next event waits for the ack of the one before.
	//
	// retryAt is the earliest time an event now waiting out a backoff
	// may be handed out (zero if none): with nothing leased, a member
	// waits until then or until Wait returns.
	Lease(ctx context.Context, n int, chain bool, acks ...uint64) (ds []Delivery, retryAt time.Time, err error)

	// Ack marks events this member was handed as handled.
	Ack(ctx context.Context, positions ...uint64) error

	// Renew extends this member's lease on position p to a full ack wait
	// from now and returns the new deadline, if the member still holds
	// the lease; ok false otherwise, and the member must not start
	// handling the event.
	Renew(ctx context.Context, p uint64) (deadline time.Time, ok bool, err error)

	// Nack gives a leased event back after a failure, recording reason:
	// it is delivered again after a backoff (200 ms, doubling, at most
	// 10 s), or parked if it used up its deliveries.
	Nack(ctx context.Context, p uint64, reason string) error

	// Return gives leased events back unhandled, without counting the
	// delivery (the rest of a stream's batch after one of its events
	// failed).
	Return(ctx context.Context, positions ...uint64) error

	// Wait returns when the group may have events for this member: new
	// events appended, leases given back by others, or ctx done (its
	// error).
	Wait(ctx context.Context) error

	// Close gives this member's leases back at once (but manual ones,
	// which wait for Group.Ack or their deadline) and leaves the group.
	Close() error
}

// Delivery is one event leased to a member.
type Delivery struct {
	Event      codec.Event
	Deliveries int // 1 on the first delivery
	// Deadline is when the lease ends: a member that handles the event
	// must be done by then, or Renew the lease, as the event goes to
	// another member after it.
	Deadline time.Time
}
