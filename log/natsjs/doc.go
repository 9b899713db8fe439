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
// its message unless Evt-Time says otherwise. Retention rules and fold
// snapshots live in the KV bucket EVT_<stream>_META.
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
// appended again unless it carries its expectation, which a retry that
// already succeeded fails with ErrConflict. What only a directory of
// files can do (verify, repair, hash chains, compaction of segments) is
// not offered: commands get log.ErrUnsupported. Neither, yet, is a
// conditional append across streams (log.Condition, --fail-if-match): an
// append that carries one is refused with log.ErrUnsupported rather than
// stored unchecked. (The mechanism is there: a message's
// Nats-Expected-Last-Subject-Sequence with
// Nats-Expected-Last-Subject-Sequence-Subject set to a query's subject
// filter, checked at the commit of the atomic batch.)
package natsjs
