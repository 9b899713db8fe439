// Package local is the evt store on a local directory: one global append-only log split into
// segment files, a commit file that says where it ends, and derived
// indexes (per-segment offsets, the heads table, the id index) that make
// appends and stream lookups O(1) in the size of the store.
//
// The shape is EventStoreDB's: one global log, many streams, an index to
// find each stream. It runs without a daemon the way SQLite's WAL mode
// runs: short writers take turns under an exclusive flock (lock.go),
// readers take no lock and read, with pread, only up to a committed end.
// This comment is the store's design: its files, the record format, the
// commit protocol, the numbered recovery steps, readers, retention and
// compaction, the tables, and where it deviates from DESIGN.md and why.
//
// # Files of a store
//
//   - NNNNNNNNNNNNNNNNNNNN.seg (truth): segment: a run of records; named by its first position (20 digits, so a listing sorts in log order)
//   - NNNNNNNNNNNNNNNNNNNN.idx (derived): per segment, 16 bytes per position: byte offset and time of the record — position → record in one read, and sorted times for seeking
//   - NNNNNNNNNNNNNNNNNNNN.G.idx (derived): the same for a segment compacted G times (offset 0: dropped by compaction)
//   - NNNNNNNNNNNNNNNNNNNN.G.sidx (derived): instead of NAME.G.idx when smaller: 24 bytes (position, offset, time) per kept record and per run of dropped ones, binary-searched (offsets.go)
//   - retention.json (state of its own): retention rules and the store's size limit, replaced atomically under the append lock
//   - compact.lock: one compaction at a time, never during verify or repair (flock); also guards `chain`
//   - chain (state of its own): optional hash chain over sealed segments (`evt verify --chain`)
//   - commit (published end): where the log ends: next position, active segment and its committed length
//   - heads (derived): stream → last position, version, cut (the last version a truncate or delete removed, and whether it was a delete) (open addressing, mmap)
//   - ids (derived): (stream, event id) → position, for idempotent retries
//   - names, names.1, names.log (derived): every stream name, sorted in levels, for listing names by prefix (shell completion); see names.go
//   - lock: the append lock (flock) and the PID of its holder
//   - snapshots/ (derived): cached fold states, checked against the log before use; delete at will
//   - groups/NAME/ (state of its own): a consumer group: `config.json`, `state` (binary, replaced through log/atomicfile), `lock`, `members/`
//   - groups/.expired, groups/.lock: the until-acked marks recorded before a group is created, removed or reset back, so that what the queue removed stays removed (groupfloor.go)
//
// Every derived file can be rebuilt from the segments (`evt repair`), and a
// stale one is detected and brought up to date automatically by the next
// writer. Files are created owner-only (0600, directory 0700).
//
// # The record
//
// Little-endian, CRC32C (Castagnoli), 56 bytes of header
// (`codec/record.go`):
//
//	 0               4               8
//	+---------------+---------------+
//	| length u32    | crc32c u32    |   length: whole record; crc32c: bytes [8, length)
//	+---------------+---------------+
//	| position u64                  |   global, dense from 1
//	+-------------------------------+
//	| version u64                   |   inside the stream, dense from 1
//	+-------------------------------+
//	| prev u64                      |   position of the stream's previous record, 0 if none
//	+-------------------------------+
//	| time i64                      |   unix ns, UTC, never decreasing along the log
//	+-------+---+---+---+---+-------+
//	|flags  |sl |tl |il |0  |  0    |   flags u16 (end-of-batch, tombstone, truncate); name lengths u8
//	+-------+---+---+---+---+-------+
//	| data length u32 | meta len u32|
//	+-------------------------------+
//	| stream | type | id | data | metadata
//
// A record is capped at 1 MiB (header and body): it bounds what a reader
// must hold for one record and keeps a corrupt length from asking for
// gigabytes. Stream and type names are at most 255 bytes, ids 128. Data and
// metadata are stored as compact JSON, validated before anything is written.
//
// A segment starts with a 64-byte header: magic `EVTSEG\0\1`, format version
// 1, header size, first position, creation time, generation (0 as appended,
// G after its G-th compaction), CRC32C. Segments are sealed
// at 64 MiB: large enough that a billion events make a few thousand files,
// small enough that recovery after a power loss, which rescans the active
// segment, reads at most that. A batch never spans segments (so a torn batch
// is always at the end of one file); a single batch larger than a segment
// makes that segment larger.
//
// # The commit file
//
// Two 128-byte slots at offsets 0 and 512 (different sectors), each with a
// sequence number and CRC32C: next position, active segment, its committed
// length, the last record's time, the last sync time, and the kernel's boot
// id. A writer overwrites the older slot; a torn write, or a reader racing the
// writer, leaves the other slot whole, and a reader takes the valid slot with
// the higher sequence. The file is not fsynced: the segments are the truth,
// and recovery finds synced batches past a lost publish by scanning forward.
//
// # The commit protocol (one append)
//
//  1. Parse and validate the batch and encode its records. NDJSON is cut
//     into blocks of lines parsed on every core; the first bad line in input
//     order is the one reported. From a pipe (or arguments), the whole batch
//     is parsed before any lock is taken, so a slow producer never holds up
//     other writers. From a file on stdin, the lock is taken when the first
//     block is parsed and each block is written past the committed end while
//     the next ones are parsed (`log.Appender`); a bad line or a failed
//     expectation cuts the segment back, and a crash leaves records that no
//     end-of-batch record follows, which recovery drops. Either way a bad
//     line 7 changes nothing anyone can see.
//  2. Take the exclusive `flock` on `lock`, waiting at most `--lock-timeout`
//     (the kernel releases it when its holder dies, even by SIGKILL).
//  3. Read the commit file and run the recovery steps below (normally: one
//     `fstat` showing that the active segment ends where the commit says).
//  4. Resolve ids already stored (the id index, then the record it points at)
//     and check every expectation against the heads table. A conflict returns
//     exit 3 before a byte is written. A condition across streams
//     (`--fail-if-match`, condition.go) is checked just before the commit
//     point, still under the lock, against the committed log: a heads-table
//     lookup per stream, the stream's events after its position for types,
//     a scan from its position for a glob; a match cuts the batch off.
//  5. Give each event its position, version, `prev` pointer and the batch's
//     time; flag the last record end-of-batch; checksum.
//  6. If the active segment would pass 64 MiB: seal it (fdatasync it, fsync
//     its offsets, msync the tables), remove any orphan segment a killed roller
//     left, create the next segment, fsync the directory.
//  7. `pwrite` the records after the committed end, `pwrite` their offsets,
//     then `fdatasync` the segment (per `--sync`). A failed write or sync cuts
//     the segment back to the committed end; a failed fsync makes this
//     process refuse further appends rather than risk acknowledging data the
//     disk does not have. Meanwhile, on the other core, the batch's ids go
//     into the id index: only writers read it, under the lock, and they check
//     every hit against the record it names, so an entry for an append that
//     then failed is harmlessly stale.
//  8. Publish: write the new end into the commit file's older slot.
//  9. Update the heads table in place, then both tables' `applied` marks.
//     Unlock.
//
// # Recovery (numbered, run by every writer under the lock, and by `evt repair`)
//
//  1. Read the commit file: next position, active segment, committed size.
//  2. If the active segment is longer than its committed size, a writer died
//     mid-append (or a power loss dropped the last publish after its data was
//     synced). Scan forward from the committed size; accept each complete batch
//     (valid checksums, positions continuing the log, the last record flagged
//     end-of-batch), truncate what follows, rewrite the accepted records'
//     offsets, and publish the new end.
//  3. If the kernel boot id differs from the commit file's, the machine
//     restarted and unsynced pages of any file may be gone. Rescan the active
//     segment from its header (sealed segments and their derived files were
//     synced when sealed), follow into a segment that a lost publish had rolled
//     to, and rebuild the heads table and id index from the log if they refer
//     to positions past the recovered end. Unreadable data below the committed
//     end is never cut silently: evt stops and asks for
//     `evt repair --drop-damaged`.
//  4. Bring the heads table and the id index up to the committed end by
//     applying the records after their `applied` mark (a writer killed between
//     publishing and updating them leaves such a gap). A missing or corrupt
//     table is rebuilt from the segments.
//
// A process that only reads never writes, with one exception: on the first
// open after a reboot, or when the heads table is missing, it runs the same
// recovery once under the lock.
//
// # Readers
//
// Readers take no lock. They read the commit file, then read with `pread`
// (never mmap: truncation under a mapping is SIGBUS) only up to the committed
// end, so they never see a partial batch and never block a writer. A
// position is found through the segment list (binary search on the file
// names) and the segment's offsets file (one 16-byte read, checked against the
// record it points at; a missing or stale entry falls back to scanning the
// segment). A stream's head is one heads-table lookup and one record read,
// plus a scan of the records the table has not absorbed yet (normally none).
// Every public read passes the records through the view of the retention
// limits (next section); a compacted segment has gaps, which a scan skips
// and a position lookup reports as removed (its offsets entry is empty), and
// a segment removed under a reader makes it move on to the first segment
// left.
//
// # Retention and compaction
//
// The limits as a view. Every public read builds a view of the limits
// (`log/view.go`) at the committed end and passes each record through it;
// recovery, verify, repair and compaction read the raw log. Every limit
// removes a *prefix* of a stream:
//
//   - a cut (truncate, delete) removes the versions up to it;
//   - max-count removes all but the newest versions;
//   - max-age removes events older than a time, and times never decrease along
//     the log;
//   - until-acked removes positions below every matching group's acked position;
//   - max-bytes and removed segments remove the positions below a start.
//
// So a stream read walks its back-pointers from the head and stops at the
// first record that is gone or hidden, and compaction never breaks a chain a
// read follows. The cost with no limits is one flag test per record (markers
// are never printed); with cuts it is one heads-table lookup per record, with
// rules one glob match per rule.
//
// Markers. `delete` and `truncate` append a record to the stream with the
// tombstone or truncate flag. A marker's version field holds the last version
// it removes; it takes no version of its own and is not on the chain of
// back-pointers (prev 0). The heads table's third value is the stream's cut
// (with a high bit for "deleted"), so a fresh process knows it in O(1); a
// rebuild of the tables finds it again from the markers.
//
// Compaction (`log/compact.go`) takes a compaction flock (one at a time;
// `evt verify` and `evt repair` hold it too, so they never read a segment
// whose offsets file is being swapped; compaction waits for it up to
// `--lock-timeout`),
// then the append lock for a moment to bring the tables to the committed end,
// and works on sealed segments only, which no writer touches:
//
//  1. Remove leftovers of a killed compaction: `NAME.seg.compact` files and
//     offsets files of a generation no segment has.
//  2. For each sealed segment, oldest first, decide per record: keep it if the
//     view keeps it, or if it is its stream's newest record (heads table), or
//     the marker that set its stream's cut.
//  3. Nothing to drop: leave the segment. Nothing to keep, and every segment
//     before it is gone: delete it (the log then starts at the next one; a
//     reader that fails to open it sees that and moves on).
//  4. Otherwise write the kept records, byte for byte, to `NAME.seg.compact`
//     with a header of generation G+1, and the new offsets file `NAME.G+1.idx`
//     (offset 0 for dropped positions, with a time no later than theirs so
//     time seeks still work), or the sparse `NAME.G+1.sidx` with entries
//     for the kept records only when that is smaller; fsync both and the directory; rename the new
//     segment over the old (the one atomic step: the segment file names its own
//     offsets file through its generation, so the pair is never mixed); fsync
//     the directory; delete the old offsets file.
//  5. Delete fold snapshots of streams cut since they were taken.
//
// A crash before the rename leaves the old segment and a leftover; after it,
// the new segment complete with its offsets. Readers that opened the old file
// keep it (invariant 4). Verify and repair accept gaps in a compacted segment
// (a record's prev may name a position no segment holds) and check everything
// else as before.
//
// # The heads table and the id index
//
// Open-addressing hash tables in files of their own, mapped with `MAP_SHARED`
// so that a lookup in a fresh process is a few memory reads. A key is 128 bits
// from two unrelated hash functions (xxhash64 and FNV-1a 64) of the name; the
// chance that two of a billion names share a key is below 1e-20, so a hit is
// trusted without reading the log (`evt verify` checks every entry against
// the log). Every word is read and written with atomic 64-bit operations; a
// new slot's key is stored last and the `applied` mark after the slots it
// covers. The tables grow by being rebuilt into a new file renamed over the
// old one (load at most 1/2); the old file is flagged `moved`, so any process
// still mapping it reopens. mmap is safe here where it is not for segments: a
// table file is never truncated in place.
//
// # Deviations from DESIGN.md, with the measured reason
//
//   - Invariant 6 in letter, not in effect, for a file on stdin. "A batch
//     is validated whole before the first byte is written": from a regular
//     file, evt writes validated blocks past the committed end while later
//     blocks are still being parsed, and cuts them off if a later line is bad.
//     Nothing is published before the whole batch is valid, readers never
//     read past the committed end, and recovery drops an unfinished batch, so
//     no reader and no later writer can tell. Measured on 1M events: 1.46 s →
//     1.20 s, and 690 MB → 240 MB of memory, because parsing overlaps the
//     write instead of preceding it and the batch is no longer held whole.
//     The lock is held during parsing, which from a file is about as long as
//     the write and sync it replaces; a pipe keeps the buffered path.
//
//   - No per-segment stream index yet. Reading one stream walks its
//     back-pointers from the head the heads table gives (two `pread`s per
//     event; the records of the walk are kept, up to 16 MiB, for the forward
//     pass). Measured: `evt tail account-1 -n 100` is 4.0 ms in a store of 10M
//     events over 100k streams (static build; `evt version` alone is 3.1 ms),
//     within the 5 ms target; folding a 10,000-event stream from scratch takes
//     38 ms in process. Compaction would also have to rewrite such an index. A sorted (stream hash, version, offset) index per sealed
//     segment would turn the walk into one read per segment; it is the next
//     step when streams of millions of events matter.
//
//   - A batch never spans segments, so one huge batch makes one huge
//     segment (a 1M-event import makes a 250 MB segment): recovery after a
//     reboot rescans the active segment, so its cost is bounded by the
//     largest batch rather than by 64 MiB. Splitting a batch across segments
//     would need a two-segment torn-batch rule in recovery.
//
//   - The id index costs space. Every event's id is indexed (generated
//     ULIDs too, so re-appending evt's own output is idempotent): 24-byte
//     slots at load ≤ 1/2, about 50–100 bytes an event (805 MB for 10M
//     events). Indexing only producer-given ids would remove most of it.
//
//   - Compaction keeps each stream's newest record, though no read shows
//     it, and the marker of its last delete or truncate: the segments are the
//     only truth (invariant 1), so a rebuilt heads table must still find every
//     stream's version, or a deleted stream's versions could be given again.
//     The cost is a record per stream that ever existed (a few hundred bytes),
//     and an oldest segment holding one is rewritten small rather than deleted
//     (max-bytes counts segments by their size as appended, so this never
//     brings a removed event back).
//
// # Assumptions
//
//   - Linux (flock, fdatasync, the boot id in `/proc`), a little-endian
//     machine, a local file system where `flock` works and `fdatasync` means
//     what it says (not NFS).
//   - A write of 128 bytes at a 512-byte boundary reaches the disk whole or
//     not at all, or is caught by its CRC (the commit file has two slots for
//     that reason).
//   - From a pipe, `evt append` holds a batch in memory while it is
//     validated: a 1M-event batch of 200-byte events needs about 650 MB.
//     From a file (and `evt import`, which copies a pipe to a temporary
//     file first) a batch is written as it is parsed, and its heap does not
//     grow with it (appender.go, putID): given ids go into the id table as
//     they are written, fresh ids wait for Commit up to 1M (24 MiB). What
//     still grows is a result per event without `-q`, a state per distinct
//     stream, and the mapped id table (file pages: one batch is one
//     segment, so the table holds all its ids). A 5M-event import: 468 MB
//     max RSS, 76 MB of it anonymous (was 1.1 GB, 700 MB).
package local
