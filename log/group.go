package log

import (
	"time"

	"github.com/evtdev/evt/codec"
)

// GroupConfig is how a group was created; it does not change.
type GroupConfig struct {
	Name       string        `json:"name"`
	Selection  string        `json:"selection"`
	Types      []string      `json:"types,omitempty"`
	AckWait    time.Duration `json:"ack_wait"`
	MaxDeliver int           `json:"max_deliver"`
	Ordering   string        `json:"ordering"` // "stream" or "none"
	Created    time.Time     `json:"created"`
}

// Delivery is one event leased to this member.
type Delivery struct {
	Event      codec.Event
	Deliveries int // 1 on the first delivery
	// Deadline is when the lease ends: a member that handles the event
	// must be done by then, or renew the lease (local: Group.Renew), as
	// the event goes to another member after it.
	Deadline time.Time
}
