// Package log is the contract between evt's commands and its stores: the
// Store interface, the types that cross it (batches, results, stream
// heads, retention rules, group configuration, snapshots) and the
// sentinel errors every store wraps, so a command maps an error to an
// exit code with errors.Is whatever store produced it.
//
// The local store (a directory of segment files, package log/local) is
// the first implementation. A store that cannot do something the contract
// lists as optional returns an error wrapping ErrUnsupported.
package log

import (
	"context"
	"iter"
	"time"

	"github.com/evtdev/evt/codec"
)

// Store is an event store: one log of events in global position order,
// partitioned into streams. Positions are dense and start at 1; a
// stream's versions are dense and start at 1. A Store is used by one
// goroutine at a time; processes (or hosts) share the store itself.
type Store interface {
	// Append stores b atomically: every event of it, or none. When it
	// returns without error the batch is durable as the store's sync
	// policy promises and visible to every reader; the results give, in
	// order, each event's position, version, id and time.
	//
	// An event whose id its stream already holds is not stored again;
	// its result is the stored one with Duplicate set (idempotent
	// retries). A stream whose events in b are all such duplicates is a
	// retry that already succeeded: its expectation is not checked, so
	// a retry with its original expectation succeeds. A failed expectation fails the whole batch with an error
	// wrapping ErrConflict and stores nothing. So does a failed
	// condition (Batch.FailIfMatch), checked atomically with the write;
	// a store that cannot check one refuses the batch with
	// ErrUnsupported rather than ignore it.
	//
	// ctx cancels the append until its commit point (see Committing):
	// a ctx done before it, also while the append waits for another
	// writer, stores nothing and returns an error wrapping ctx's. Past
	// it the append runs to its end and returns its results whatever
	// ctx says.
	Append(ctx context.Context, b *Batch) ([]Result, error)

	// Head returns the head of one stream, or an error wrapping
	// ErrNotFound when it has no event a read would yield (never
	// appended, deleted, or wholly truncated or expired).
	Head(stream string) (StreamInfo, error)

	// Streams returns the head of every stream match accepts (nil: all),
	// sorted by name.
	Streams(match func(stream string) bool) ([]StreamInfo, error)

	// Bounds returns a lower bound of the first retained event's
	// position (a store may not yet know what retention removed) and the
	// position the next append will take: every event a read can yield
	// lies in [first, next).
	Bounds() (first, next uint64, err error)

	// PositionAt returns the position of the first event stored at or
	// after t, or the next position when there is none.
	PositionAt(t time.Time) (uint64, error)

	// Read yields the events q selects, in position order, each once.
	// Markers of deletes and truncates, and events retention removed,
	// are never yielded. The record yielded is valid until the next
	// step of the iteration (the loop body must copy what it keeps):
	// reads of a million events allocate nothing per event.
	//
	// Without Follow the iteration ends at the end committed when it
	// reached it; with Follow it then waits for new events and yields
	// each as it is committed, by any writer, until ctx is done (the
	// error is then ctx's), Idle passes without a selected event (a
	// clean end), or the loop stops. A query for one stream that does
	// not exist yields an error wrapping ErrNotFound first, unless it
	// follows.
	Read(ctx context.Context, q Query) iter.Seq2[*codec.Record, error]

	// Delete cuts every event of stream off (a later append starts the
	// stream again at the next version) if e holds. It returns the
	// position of the marker that records the cut. A ctx done before the
	// marker is committed (while waiting for the append lock, say) stops
	// it with ctx's error and nothing written.
	Delete(ctx context.Context, stream string, e Expectation) (Result, error)

	// Truncate cuts off the events of stream before version before, if
	// e holds; ctx as for Delete.
	Truncate(ctx context.Context, stream string, before uint64, e Expectation) (Result, error)

	// Retention returns the store's retention policy.
	Retention() (Retention, error)

	// UpdateRetention applies fn to the policy and stores the result
	// atomically; limits take effect for reads at once.
	UpdateRetention(fn func(r *Retention) error) error

	// LoadSnapshot returns the cached fold state of stream for the
	// reducer with this fingerprint when there is one that still matches
	// the log; a missing or stale snapshot is not an error.
	LoadSnapshot(fingerprint, stream string) (Snapshot, bool)

	// SaveSnapshot caches a fold state. It is a cache: a failure loses
	// nothing but time.
	SaveSnapshot(fingerprint, stream string, snap Snapshot) error

	// Close releases the store. Appends already returned stay durable.
	Close() error

	// The store's consumer groups.
	GroupStore

	// The JSON Schemas of its event types.
	SchemaStore
}

// Query selects the events a Read yields.
type Query struct {
	// Selection picks the streams: one stream, a glob, or every stream.
	Selection codec.Selection
	// Types, when not empty, keeps only events of these types.
	Types []string
	// From is where the read starts: start, end, a position, +N (after
	// the first N selected events), -N (the last N selected events) or a
	// time. CursorStored names a consumer group's position, which the
	// caller resolves to a position first.
	From codec.Cursor
	// To, when not 0, is the last position the read yields; a following
	// read ends cleanly when it passes To. With From -N, the N are the
	// last selected events of the whole log, then bounded by To.
	To uint64
	// Follow keeps the read going after the committed end (tail -f).
	Follow bool
	// Idle, with Follow, ends the read after this long without a
	// selected event (0: never).
	Idle time.Duration
	// Poll, with Follow, watches the store by polling rather than by
	// file notifications (network file systems).
	Poll bool
	// CaughtUp, with Follow and when not nil, is called each time the
	// read has yielded every selected event committed so far, before it
	// waits for more (also when there was nothing to yield). A follower
	// that buffers its output flushes it here: once per wake-up rather
	// than once per event. An error from it ends the read with it.
	CaughtUp func() error
}
