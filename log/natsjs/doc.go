// Package natsjs is a log.Store on NATS JetStream (nats-server 2.14 or
// newer): the same contract as the local store, for producers and
// consumers on many hosts and a log replicated by the server.
//
// # Layout
//
// One evt store is one JetStream stream (default name EVT) of file
// storage with atomic publish on and no limits that remove messages by
// themselves (MaxAge, per-subject limits, TTLs and delete markers would
// remove a stream's newest message and with it its version). Its metadata
// says evt_format=1, evt_buckets=256, evt_hash=fnv1a32; a pre-existing
// stream without them, or with a setting evt cannot use, is refused with
// the setting named.
//
// Each evt stream is one subject, ROOT.<bb>.<category>.<name>: ROOT is
// "evt" for the stream EVT and evt_NAME for any other (two JetStream
// streams of an account may not share subjects), bb two hex digits of
// FNV-1a-32(name) mod 256 (the partition bucket), category the part of
// the name before its first '-', each token escaped (%XX for '%', '.',
// whitespace and control bytes, a token that would be '*' or '>'; "%" for
// an empty token).
//
// A message is one event: the payload {"data":D} or
// {"data":D,"metadata":M}, and headers Evt-Version, Evt-Type, Evt-Id,
// Evt-Data-Len (so a reader slices D out), Evt-Cut and Evt-Cut-At (the
// stream's cut and the position of its marker, carried by every event so
// that the subject's last message is the stream's whole head), Evt-Prev
// (the stream's previous event: a position, or -K for K messages back in
// the same batch), Evt-Time (only for an event that keeps its own time,
// evt import), Evt-Batch-Len (on each message of a batch of several) and
// Nats-Msg-Id (base64url of SHA-256(stream, 0, id), 22 characters: the
// server dedupes per JetStream stream, evt ids are per evt stream).
// Delete and truncate markers carry Evt-Mark and the last event's
// position, type and time (Evt-Last, Evt-Last-Type, Evt-Last-Time).
//
// Position = stream sequence; an event's time is the server's time of
// its message unless Evt-Time says otherwise. Retention rules, fold
// snapshots and what groups keep beside their consumers live in the KV
// bucket EVT_<stream>_META.
//
// # Consumer groups
//
// A group is durable pull consumers on the JetStream stream; how each
// promise of log.Group and log.Member maps onto them:
//
//   - Consumers: evtg_<name>_<i>, i < P (the name with every byte but
//     letters, digits and '-' as _XX). P = GroupConfig.Partitions
//     (DefaultPartitions, 16, if 0; at most 256) for ordering "stream",
//     1 for ordering "none" or a selection of one stream. Partition i
//     filters the buckets b with b mod P = i, each narrowed to the
//     selection's category when it fixes one (ROOT.<bb>.<cat>.>); a
//     stream always falls in one partition. AckExplicit, AckWait = the
//     group's, MaxDeliver -1 (evt parks), DeliverAll then reset to the
//     start position (a reset may not go below a consumer's start).
//   - Config: the GroupConfig as JSON in each consumer's Metadata
//     (evt_group); a group exists once partition 0 exists (made last,
//     removed first); Groups lists the consumers named evtg_*_0.
//   - Ordering "stream": MaxAckPending 1 per partition consumer, so a
//     stream's next event is not delivered while one before it is out,
//     across member crashes too. Deviation: one slow or failing event
//     holds up its partition (1/P of the streams), not its stream alone,
//     until it is acked or parked; and chain never brings more than one
//     event per partition (OneInFlightPerLane).
//   - Ordering "none": one consumer, MaxAckPending 20000.
//   - Lease: one no-wait pull of one message per partition that no live
//     member holds (the held records below say which) and whose last
//     pull was not empty nor its last delivery the consumer's last (a
//     pull on an empty partition waits out its expiry; an append there,
//     an answer on its ack subjects, a reset or the next heartbeat makes
//     it worth asking again), and, of partitions whose head the member
//     knows (an event it gave back), only those that may hold one of the
//     n lowest positions; all sent at once
//     and each ended by the server within 50 ms; what comes is sorted by
//     position, the first n handed out and the rest given back (a plain
//     nak, not counted). Retried events go first. Events of other types
//     (Types), markers and messages not evt's are acked and skipped.
//   - Deadline = the time before the pull + AckWait, so it never passes
//     after the server's own ack wait; an answer after it is not sent
//     (the server applies an ack to whichever delivery holds the
//     message, so a late ack would end another member's lease).
//   - Answers wait for the server's reply: +ACK (Ack), -NAK with evt's
//     backoff, 200 ms doubling to 10 s (Nack), +TERM once the deliveries
//     are used up (parking), +WPI (Renew: restarts the server's ack
//     wait), plain -NAK (Return, Close).
//   - Deliveries: the server's count also counts returns, so evt counts
//     failures itself: g.<name>.f.<pos> holds the failed deliveries and
//     the last reason, written by Nack, by the member at a lease's
//     deadline (a lease that expires) and by the member that gives a
//     dead member's leases back; Deliveries = failures + 1, read only
//     when the server's count is above 1. Deviation: a member stopped
//     (not dead) past its deadline writes no failure, so that delivery
//     is not counted.
//   - Parking: after MaxDeliver failures the event is +TERM'd and
//     g.<name>.p.<pos> keeps its stream, type, deliveries and reason.
//     Retry writes g.<name>.l.q.r.<pos>, a lease record that members
//     take by compare-and-set before new events and answer by updating
//     it (JetStream cannot deliver a terminated message again). A
//     retried event does not hold up its stream's later events.
//   - Members: HOST:PID (.N for a process's later members). A member's
//     heartbeat g.<name>.l.m.<id> lives 3 s (a per-key TTL; the bucket
//     gets AllowMsgTTL on first use) and is renewed every second; its
//     held record g.<name>.l.h.<id> lists the reply subject and count of
//     each lease, written by every lease and answer. A lease by any
//     member gives back (nak, counted as failed) the leases of a held
//     record whose heartbeat is gone, after claiming it by
//     compare-and-set: a dead member's events come back 3–4 s after its
//     last heartbeat. Wait returns on an append to the selection, an
//     answer on the group's ack subjects, a retry or reset, or after
//     500 ms (the server redelivers without a message to watch).
//   - Manual ack: a manual member's lease is g.<name>.a.<pos> (reply
//     subject, deadline; TTL the ack wait), not in its held record, so
//     it outlives the member; Group.Ack sends +ACK to it from any
//     process.
//   - Reset: the consumer reset API (nats-server 2.14) on each partition,
//     after a dry run's count of the selected events in between. A
//     partition whose event out is at or after the new position keeps
//     it: g.<name>.l.q.x.<i> waits, and the member or evt ack that ends
//     that event resets the partition instead of acking (an expired or
//     given-back one is reset by the lease it comes back to). Failure
//     counts start again. Deviation: with ordering none the consumer is
//     reset at once, and an event held at or after the new position may
//     go to another member while its holder still runs it.
//   - Status: Committed is the first selected event past its partition's
//     ack floor, from the lowest floor (the end of the log when no
//     partition has events out or pending); Lag is the consumers' ack
//     pending plus their pending (exact for every stream or one stream
//     without types; otherwise the undelivered events are counted by a
//     headers-only scan); Oldest is the time of the first selected event
//     at Committed or after; Leased counts the held records, manual
//     leases and retried leases; Parked the p keys; Members the
//     heartbeats.
//   - Skipped: events max-age/max-count hide are acked by the lease
//     that gets them and counted in g.<name>.s past a frontier per
//     partition (groupskip.go).
//   - RemoveGroup deletes the consumers and purges g.<name>.>.
//
// # Consistency
//
// Every read that must see the caller's own writes (heads, the key-value
// state, a stream's events) goes through the stream's leader
// (STREAM.MSG.GET, ordered consumers), never a direct get, which a
// lagging replica may answer. Appends are described at Append. Readers
// hold back the messages of an atomic batch until its last message is
// stored, so they never show part of one.
//
// # Differences from the local store
//
// One append is atomic up to the server's atomic batch limit (1000
// messages unless the operator raises jetstream { limits { batch {
// max_msgs } } }); a larger one is refused before anything is written,
// with log.ErrTooLarge. Ids given to an append are looked up among the
// stream's events of the last Options.IDLookback (default an hour; the
// server's own dedupe window is shorter): a retry older than that is
// appended again, unless it carries its expectation: the stream has moved
// past it, and on that conflict the ids are looked up in the whole
// stream, so such a retry is recognised at any age. What only a directory of
// files can do (repair, hash chains, segments) is not offered: commands
// get log.ErrUnsupported. Verify checks evt's layout. Compact is the
// retention sweep (compact.go): it purges what max-age and max-count
// hide, below each stream's newest message, archiving first what an
// archive rule covers. Until-acked rules are not applied yet: reads and
// compaction ignore them.
//
// A conditional append (log.Condition, --fail-if-match Q --after P) is
// checked in the same commit as its batch: the append reads the last
// message of each query's subject filter (the stream's subject for one
// stream, ROOT.*.CAT.> for a glob that fixes a category), looks for a
// match in (P, that message] with a headers-only read, and sends the
// batch with Nats-Expected-Last-Subject-Sequence = that message on
// Nats-Expected-Last-Subject-Sequence-Subject = the filter (a wildcard
// subject: nats-server 2.11 or newer). A message that lands in the
// filter in between fails the commit, and the append starts again. A
// category's check also covers the heads of the batch's streams in that
// category, so a DCB append of one event carries one check. The log's
// last sequence (Nats-Expected-Last-Sequence) is checked instead when a
// query has no narrower filter (every stream, or a glob that fixes no
// category), when the checks outnumber the batch's messages, and on a
// clustered server for any wildcard filter: there the server guards
// proposals in flight only by literal subject, so a wildcard check alone
// could miss an append not yet applied. Events after P that a delete or
// truncate purged before the check count through its marker (the last
// event's position and type); when a purge may have taken events of
// other types the append conflicts rather than guess.
package natsjs
