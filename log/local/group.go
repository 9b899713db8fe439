package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/atomicfile"
	"github.com/evtdev/evt/log/local/vfs"
)

// Consumer groups. A group is a named, shared cursor over a selection of
// the log, kept in DIR/groups/NAME/:
//
//	config.json   how the group was created (selection, ack wait, …)
//	state         committed position, scan frontier, leases, parked events
//	              (binary, see groupstate.go)
//	lock          flock guarding state (never the append lock)
//	members/PID   one per live consumer, flocked by it while it runs
//
// Each event goes to one member at a time, at least once. A member leases
// events under the group lock, handles them without it, and acks them
// under it again. A lease whose deadline passed, or whose member's flock
// is free (the process died, even by SIGKILL), is handed out again; after
// MaxDeliver deliveries the event is parked and the group moves on.
//
// The state is small (leases in flight, parked events) and replaced
// whole through log/atomicfile (write a temporary file, fsync, rename,
// fsync the directory when new): a kill or a power loss at any instant
// leaves the old or the new state, never an empty or torn one. A
// consumer writes it once per lease (its acks ride on the next lease),
// so a printing consumer pays one fsync per batch of up to 1000 events.
//
// Positions below Committed are done: acked, parked, or not selected.
// Positions in [Committed, Next) are done unless pending. So Committed is
// the smallest pending position, or Next.

// Lease is an event handed out (Member set) or waiting to be handed out
// again (Member empty, not before NotBefore).
type Lease struct {
	Stream     string    `json:"stream"`
	Member     string    `json:"member,omitempty"`
	Deadline   time.Time `json:"deadline,omitzero"`
	NotBefore  time.Time `json:"not_before,omitzero"`
	Deliveries int       `json:"deliveries"`
	LastError  string    `json:"last_error,omitempty"`
	// Token tells one handing out of the event from another: a member
	// acks, nacks, renews or returns a lease only with the token it got,
	// so its late answer never touches the event once it was handed out
	// again, or queued again by a reset. 0 is no handing out.
	Token uint64 `json:"token,omitempty"`
	// Manual is a lease of a --manual-ack member: it waits for evt ack
	// or its deadline, not for its member, which may have exited.
	Manual bool `json:"manual,omitempty"`
	// Again: the group was reset over this event while it was leased;
	// once its holder is done (ack, nack, expiry, death) it is delivered
	// again from its first delivery instead of being done.
	Again bool `json:"again,omitempty"`
}

// Parked is an event the group gave up on.
type Parked struct {
	Stream     string    `json:"stream"`
	Type       string    `json:"type"`
	Deliveries int       `json:"deliveries"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
}

// GroupState is the mutable state of a group.
type GroupState struct {
	Committed uint64 `json:"committed"`
	Next      uint64 `json:"next"`
	Tokens    uint64 `json:"tokens"` // the last lease token handed out
	// Skipped counts the selected events retention removed before the
	// group handled them (log.GroupStatus.Skipped), as far as counted:
	// every such event before SkipFrontier (Lease and compaction count
	// them, and move the frontier on). Announced is how many of them a
	// member reported already (Member.Skipped).
	Skipped      uint64            `json:"skipped,omitempty"`
	SkipFrontier uint64            `json:"skip_frontier,omitempty"`
	Announced    uint64            `json:"announced,omitempty"`
	Pending      map[uint64]*Lease `json:"pending"`
	Parked       map[uint64]Parked `json:"parked"`
}

func (s *Store) groupDir(name string) string { return join(join(s.dir, "groups"), name) }

// Group is an open consumer group (log.Group).
type Group struct {
	s     *Store
	dir   string
	cfg   log.GroupConfig
	lock  vfs.File
	match func(*codec.Record) bool // the group's selection and types
}

// Member is this process's membership of a group (log.Member). Its id is
// the PID: a member's liveness is its member file's flock.
type Member struct {
	g    *Group
	file vfs.File // members/PID, flocked while the member lives
	id   string
	// held is the token of each lease this member holds and answers
	// itself (not manual ones), by position.
	held map[uint64]uint64
	// manual makes this member's leases manual (see Lease.Manual): they
	// outlive it, until evt ack (Group.Ack) or their deadline.
	manual bool
	w      *Watcher // wakes Wait
	// news is how many skipped events the last Lease was the first to
	// see (Skipped).
	news uint64
}

var (
	_ log.Group  = (*Group)(nil)
	_ log.Member = (*Member)(nil)
)

// CreateGroup makes a new group starting at position start.
func (s *Store) CreateGroup(ctx context.Context, cfg log.GroupConfig, start uint64) error {
	if err := log.ValidateGroupName(cfg.Name); err != nil {
		return err
	}
	// A new group may read from before what until-acked expired.
	return s.lowering(func() error { return s.createGroup(cfg, start) })
}

func (s *Store) createGroup(cfg log.GroupConfig, start uint64) error {
	dir := s.groupDir(cfg.Name)
	if err := vfs.MkdirAll(s.fsys, join(s.dir, "groups"), 0o700); err != nil {
		return err
	}
	// The group is made whole under a name Groups ignores, then renamed
	// into place: a crash or an I/O error part way leaves no directory at
	// the group's name that would make the name taken but the group
	// missing. Two creators race on the rename; one wins.
	tmp := s.groupDir("." + cfg.Name + "." + strconv.Itoa(os.Getpid()) + ".new")
	if err := vfs.RemoveAll(s.fsys, tmp); err != nil {
		return err
	}
	err := s.fsys.Mkdir(tmp, 0o700)
	if err == nil {
		err = s.fsys.Mkdir(join(tmp, "members"), 0o700)
	}
	if err == nil {
		st := GroupState{Committed: start, Next: start, Pending: map[uint64]*Lease{}, Parked: map[uint64]Parked{}}
		err = atomicfile.WriteFS(s.fsys, join(tmp, "state"), encodeGroupState(&st), 0o600)
	}
	if err == nil {
		err = s.writeJSONAtomic(join(tmp, "config.json"), &cfg)
	}
	if err == nil {
		err = s.fsys.Rename(tmp, dir)
		if err != nil && !s.exists(join(dir, "config.json")) && s.exists(dir) {
			// A directory without a config: left by an evt that made or
			// removed the group the old way and was killed. Clear it.
			if s.removeGroupDir(cfg.Name) == nil {
				err = s.fsys.Rename(tmp, dir)
			}
		}
	}
	if err != nil {
		if !s.exists(tmp) && s.exists(join(dir, "config.json")) {
			return nil // the rename happened and then reported an error
		}
		vfs.RemoveAll(s.fsys, tmp)
		if s.exists(join(dir, "config.json")) {
			return fmt.Errorf("%w: %s", log.ErrGroupExists, cfg.Name)
		}
		return err
	}
	// The directories that name the group, so that it survives a power
	// loss.
	if err := s.fsys.SyncDir(join(s.dir, "groups")); err != nil {
		return err
	}
	return s.fsys.SyncDir(s.dir)
}

// removeGroupDir renames a group's directory away (the group is gone at
// once, whole), makes the rename durable and then deletes it. Without the
// fsync of groups/ a power loss after evt group rm returned could bring
// the group back (TestPowerLossState in cmd/torture, case group rm).
func (s *Store) removeGroupDir(name string) error {
	gone := s.groupDir("." + name + "." + strconv.Itoa(os.Getpid()) + ".rm")
	if err := vfs.RemoveAll(s.fsys, gone); err != nil {
		return err
	}
	if err := s.fsys.Rename(s.groupDir(name), gone); err != nil {
		return err
	}
	if err := s.fsys.SyncDir(join(s.dir, "groups")); err != nil {
		return err
	}
	return vfs.RemoveAll(s.fsys, gone)
}

// OpenGroup opens an existing group, or ErrNotFound.
func (s *Store) OpenGroup(ctx context.Context, name string) (log.Group, error) {
	return s.openGroup(name)
}

func (s *Store) openGroup(name string) (*Group, error) {
	if err := log.ValidateGroupName(name); err != nil {
		return nil, err
	}
	cfg, err := s.groupConfig(name)
	if err != nil {
		return nil, err
	}
	match, err := groupMatcher(cfg)
	if err != nil {
		return nil, &log.CorruptError{File: "groups/" + name + "/config.json", Offset: -1, Reason: err.Error()}
	}
	// The lock file is opened by the first Update, not here: opening a
	// group changes nothing, and listing groups (ls, show, parked, tail
	// --from stored) works on a store this user cannot write.
	return &Group{s: s, dir: s.groupDir(name), cfg: cfg, match: match}, nil
}

// groupMatcher is the filter of a group's selection and types.
func groupMatcher(cfg log.GroupConfig) (func(*codec.Record) bool, error) {
	sel, err := codec.ParseSelection(cfg.Selection)
	if err != nil {
		return nil, err
	}
	var types map[string]bool
	for _, t := range cfg.Types {
		if types == nil {
			types = map[string]bool{}
		}
		types[t] = true
	}
	stream, single := sel.Stream()
	return func(rec *codec.Record) bool {
		if types != nil && !types[string(rec.Type)] {
			return false
		}
		if single {
			return string(rec.Stream) == stream
		}
		return sel.All() || sel.Match(string(rec.Stream))
	}, nil
}

// groupConfig reads a group's config.json; ErrNotFound if there is no
// such group.
func (s *Store) groupConfig(name string) (log.GroupConfig, error) {
	var cfg log.GroupConfig
	b, err := vfs.ReadFile(s.fsys, join(s.groupDir(name), "config.json"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return cfg, fmt.Errorf("%w: group %s", log.ErrNotFound, name)
		}
		return cfg, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, &log.CorruptError{File: "groups/" + name + "/config.json", Offset: -1, Reason: err.Error()}
	}
	return cfg, nil
}

// Groups lists the names of the store's groups, sorted.
func (s *Store) Groups(ctx context.Context) ([]string, error) {
	ents, err := s.fsys.ReadDir(join(s.dir, "groups"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		// Names starting with '.' are groups being made or removed.
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && s.exists(join(join(join(s.dir, "groups"), e.Name()), "config.json")) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// RemoveGroup deletes a group and its state.
func (s *Store) RemoveGroup(ctx context.Context, name string) error {
	g, err := s.openGroup(name)
	if err != nil {
		return err
	}
	g.Close()
	// The last group reading a stream takes until-acked's mark with it.
	return s.lowering(func() error {
		if !s.exists(join(g.dir, "config.json")) {
			return fmt.Errorf("%w: group %s", log.ErrNotFound, name)
		}
		return s.removeGroupDir(name)
	})
}

// Config is how the group was created.
func (g *Group) Config() log.GroupConfig { return g.cfg }

// Close releases the group's lock file, if an Update opened it.
func (g *Group) Close() error {
	if g.lock == nil {
		return nil
	}
	err := g.lock.Close()
	g.lock = nil
	return err
}

// Dir is the group's directory.
func (g *Group) Dir() string { return g.dir }

// joinPause runs between creating a joining member's file and locking it
// (tests delay a joiner there, as a preempted process would be).
var joinPause = func() {}

// Join registers this process as a live member: its member file stays
// flocked until the member closes or the process ends, so others can
// tell it is alive.
//
// The file is created and locked under a name others ignore (.PID.join),
// then renamed into place: a member file that others see is always
// locked by its member from the start, so a member that is slow to join
// is never taken for dead (and its leases handed out) by a concurrent
// look at the members.
func (g *Group) Join(ctx context.Context, opts log.MemberOptions) (log.Member, error) {
	return g.join(opts)
}

// ownMembers holds the ids of this process's live members, by group
// directory: a process's first member of a group is its PID, another
// one at the same time PID.N (the smallest N free), so that several
// members of one process (a program using the store, the conformance
// suite) are told apart, and the same sequence of joins gives the same
// ids.
var ownMembers = struct {
	sync.Mutex
	ids map[string]map[string]bool
}{ids: map[string]map[string]bool{}}

// takeMemberID picks and reserves this process's next member id in dir.
func takeMemberID(dir string) string {
	ownMembers.Lock()
	defer ownMembers.Unlock()
	taken := ownMembers.ids[dir]
	if taken == nil {
		taken = map[string]bool{}
		ownMembers.ids[dir] = taken
	}
	id := strconv.Itoa(os.Getpid())
	for n := 2; taken[id]; n++ {
		id = strconv.Itoa(os.Getpid()) + "." + strconv.Itoa(n)
	}
	taken[id] = true
	return id
}

// dropMemberID frees a member id takeMemberID gave.
func dropMemberID(dir, id string) {
	ownMembers.Lock()
	defer ownMembers.Unlock()
	delete(ownMembers.ids[dir], id)
	if len(ownMembers.ids[dir]) == 0 {
		delete(ownMembers.ids, dir)
	}
}

func (g *Group) join(opts log.MemberOptions) (_ *Member, err error) {
	m := &Member{g: g, id: takeMemberID(g.dir), held: map[uint64]uint64{}, manual: opts.ManualAck}
	defer func() {
		if err != nil {
			dropMemberID(g.dir, m.id)
		}
	}()
	members := join(g.dir, "members")
	tmp := join(members, "."+m.id+".join")
	f, err := g.s.fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: group %s was removed", log.ErrNotFound, g.cfg.Name)
		}
		return nil, err
	}
	joinPause()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("join group %s: %w", g.cfg.Name, err)
	}
	if err := g.s.fsys.Rename(tmp, join(members, m.id)); err != nil {
		f.Close()
		g.s.fsys.Remove(tmp)
		return nil, fmt.Errorf("join group %s: %w", g.cfg.Name, err)
	}
	m.file = f
	// The watcher before the first lease: an event appended between a
	// lease that found nothing and the Wait after it wakes the Wait.
	if m.w, err = g.s.Watch(DefaultPoll, opts.Poll, g.dir); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// ID is the member's id: its PID.
func (m *Member) ID() string { return m.id }

// Skipped is how many events retention removed before the group handled
// them that the last Lease was the first to see.
func (m *Member) Skipped() uint64 { return m.news }

// Close gives this member's leases back (see Release) and leaves the
// group: its member file goes.
func (m *Member) Close() error {
	err := m.release()
	if errors.Is(err, log.ErrNotFound) {
		err = nil // the group was removed under it: nothing to give back
	}
	if m.w != nil {
		m.w.Close()
	}
	name := m.file.Name()
	m.file.Close()
	m.g.s.fsys.Remove(name)
	dropMemberID(m.g.dir, m.id)
	return err
}

// Wait returns when the log or the group's state changed (another
// member's ack or return may free this member's next event), or when
// ctx is done.
func (m *Member) Wait(ctx context.Context) error { return m.w.Wait(ctx) }

// alive reports whether member holds its member file's flock. self is
// the caller's own member, whose file this process holds.
func (g *Group) alive(member string, self *Member) bool {
	if self != nil && member == self.id {
		return true
	}
	// Read-only is enough to flock, and lets a user without write access
	// to the store (a monitoring account) tell live members from dead.
	f, err := g.s.fsys.OpenFile(join(join(g.dir, "members"), member), os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return true // someone holds it
	}
	// A dead member's file: remove it, unless a new member of the same
	// PID renamed its own (locked) file into place meanwhile.
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(f.Name(), &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
		g.s.fsys.Remove(f.Name())
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// Members lists the live members.
func (g *Group) Members() []string {
	ents, _ := g.s.fsys.ReadDir(join(g.dir, "members"))
	live := []string{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // joining (see Join)
		}
		if g.alive(e.Name(), nil) {
			live = append(live, e.Name())
		}
	}
	return live
}

// Status summarises the group: its state, the lag, and the live
// members. The lag of a group that reads every stream of a log without
// limits is counted from positions (quickLag, grouplag.go); any other is
// counted by scanning the selected events from the committed position.
func (g *Group) Status(ctx context.Context) (log.GroupStatus, error) {
	st, err := g.read()
	if err != nil {
		return log.GroupStatus{}, err
	}
	out := log.GroupStatus{Committed: st.Committed, Parked: len(st.Parked), Members: g.Members()}
	for _, l := range st.Pending {
		if l.Member != "" {
			out.Leased++
		}
	}
	out.Skipped = st.Skipped
	switch err := g.quickLag(st, &out); {
	case err == nil:
		return out, nil
	case !errors.Is(err, errLagScan):
		return out, err
	}
	out.Lag, out.Oldest = 0, time.Time{}
	return out, g.scanLag(st, &out)
}

// scanLag counts out's Lag, Oldest and the Skipped not counted yet by
// reading the selected events from the committed position on.
func (g *Group) scanLag(st *GroupState, out *log.GroupStatus) error {
	_, err := g.s.scanGroup(st.Committed, func(rec *codec.Record) error {
		if !g.match(rec) {
			return nil
		}
		if _, pending := st.Pending[rec.Position]; rec.Position >= st.Next || pending {
			out.Lag++
			if out.Oldest.IsZero() {
				out.Oldest = time.Unix(0, rec.Time).UTC()
			}
		}
		return nil
	}, func(rec *codec.Record) error {
		if g.match(rec) && countSkipped(st, rec) {
			out.Skipped++ // not counted yet: the group's scan has not got there
		}
		return nil
	})
	return err
}

// GroupState reads group name's state as it is now (for tests and
// tools that look inside; commands use Group.Status).
func (s *Store) GroupState(name string) (*GroupState, error) {
	if err := log.ValidateGroupName(name); err != nil {
		return nil, err
	}
	if _, err := s.groupConfig(name); err != nil {
		return nil, err
	}
	return readGroupState(s.fsys, s.groupDir(name), name)
}

// Position is the group's committed position.
func (g *Group) Position(ctx context.Context) (uint64, error) {
	st, err := g.read()
	if err != nil {
		return 0, err
	}
	return st.Committed, nil
}

// Parked lists the parked events by position.
func (g *Group) Parked(ctx context.Context) ([]log.ParkedEvent, error) {
	st, err := g.read()
	if err != nil {
		return nil, err
	}
	out := make([]log.ParkedEvent, 0, len(st.Parked))
	for p, pk := range st.Parked {
		out = append(out, log.ParkedEvent{Position: p, Stream: pk.Stream, Type: pk.Type, Deliveries: pk.Deliveries, Reason: pk.Reason, At: pk.At})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Position < out[j].Position })
	return out, nil
}

// Update runs fn on the group's state under the group lock and saves the
// state if fn returns nil.
func (g *Group) Update(fn func(st *GroupState) error) error {
	if g.lock == nil {
		lf, err := g.s.fsys.OpenFile(join(g.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: group %s was removed", log.ErrNotFound, g.cfg.Name)
		}
		if err != nil {
			return fmt.Errorf("group %s: %w", g.cfg.Name, err)
		}
		g.lock = lf
	}
	if err := flockRetry(int(g.lock.Fd())); err != nil {
		return err
	}
	defer unix.Flock(int(g.lock.Fd()), unix.LOCK_UN)
	return g.updateLocked(fn)
}

// updateLocked is Update for a caller that holds the group lock.
func (g *Group) updateLocked(fn func(st *GroupState) error) error {
	old, err := vfs.ReadFile(g.s.fsys, join(g.dir, "state"))
	if errors.Is(err, fs.ErrNotExist) {
		// evt group rm --force under this member.
		return fmt.Errorf("%w: group %s was removed", log.ErrNotFound, g.cfg.Name)
	}
	if err != nil {
		return err
	}
	st, err := decodeGroupStateOf(g.cfg.Name, old)
	if err != nil {
		return err
	}
	if err := fn(st); err != nil {
		return err
	}
	st.advance()
	b := encodeGroupState(st)
	if bytes.Equal(b, old) {
		// Unchanged: no write. A member watches the group directory for
		// other members' changes; writing anyway would wake itself (and
		// every other member) in a loop.
		return nil
	}
	return atomicfile.WriteFS(g.s.fsys, join(g.dir, "state"), b, 0o600)
}

// State reads the current state (no lock: the file is replaced atomically).
func (g *Group) State() (*GroupState, error) { return g.read() }

func (g *Group) read() (*GroupState, error) { return readGroupState(g.s.fsys, g.dir, g.cfg.Name) }

// readGroupState reads the state file of group name in dir (no lock: the
// file is replaced atomically).
func readGroupState(fsys vfs.FS, dir, name string) (*GroupState, error) {
	b, err := vfs.ReadFile(fsys, join(dir, "state"))
	if err != nil {
		return nil, err
	}
	return decodeGroupStateOf(name, b)
}

// decodeGroupStateOf decodes group name's state, naming the file if it is
// damaged.
func decodeGroupStateOf(name string, b []byte) (*GroupState, error) {
	st, err := decodeGroupState(b)
	if err != nil {
		return nil, &log.CorruptError{File: "groups/" + name + "/state", Offset: -1, Reason: err.Error()}
	}
	return st, nil
}

// advance moves Committed to the smallest pending position, or Next.
func (st *GroupState) advance() {
	c := st.Next
	for p := range st.Pending {
		if p < c {
			c = p
		}
	}
	st.Committed = c
}

// maxPending bounds how far a lease scans ahead of the events a group is
// handling (Lease): the state holds every pending event and is rewritten
// on each lease and ack, so a stream with thousands of events waiting
// behind a slow one holds up the others once they are this many.
const maxPending = 4096

// Lease hands up to n events to this member: first events waiting to be
// delivered again, then new ones from the log. With ordering "stream", an
// event is never handed out while an earlier event of its stream is
// pending. Expired leases of dead or late members are reclaimed first, and
// events that reached MaxDeliver are parked.
//
// retryAt is the earliest time an event now waiting out a backoff may be
// handed out again (zero if none waits): a member with nothing to do
// sleeps until then.
//
// acks, if any, are this member's acks, applied first in the same update:
// a consumer that acks a batch and takes the next pays for one state
// write, not two.
//
// With chain, a member that handles its batch strictly in order (prints
// it, or runs handlers one by one and hands a stream's rest back when one
// fails: Return) may get several events of one stream in one batch;
// without it, as for --manual-ack, a stream's next event waits for the
// ack of the one before, as CLI.md promises.
func (m *Member) Lease(ctx context.Context, n int, chain bool, acks ...uint64) (out []log.Delivery, retryAt time.Time, err error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	g := m.g
	now := time.Now()
	err = g.Update(func(st *GroupState) error {
		out, retryAt = out[:0], time.Time{}
		m.ackOwn(st, acks)
		g.reclaim(st, now, m)
		// Scan new events into the pending set as waiting, until enough
		// of them can be handed out now (n, and 64 more for the next
		// lease) or the pending set holds maxPending events. With ordering
		// stream an event whose stream has an earlier event pending
		// cannot be handed out yet: it does not count, so the scan reads
		// past a busy stream to the others instead of leaving every
		// member idle behind it (up to maxPending).
		//
		// Which can be handed out: with ordering none, any waiting event;
		// with chain, one whose stream has no event leased or waiting out
		// a backoff (it may go in one batch with the stream's others);
		// otherwise only a stream's first pending event.
		ordered := g.cfg.Ordering != "none"
		first := map[string]uint64{} // each stream's first pending position
		stuck := map[string]bool{}   // streams with an event leased or in a backoff
		for p, l := range st.Pending {
			if q, ok := first[l.Stream]; !ok || p < q {
				first[l.Stream] = p
			}
			if l.Member != "" || now.Before(l.NotBefore) {
				stuck[l.Stream] = true
			}
		}
		ready := 0
		for p, l := range st.Pending {
			if l.Member == "" && !now.Before(l.NotBefore) && (!ordered || chain && !stuck[l.Stream] || first[l.Stream] == p) {
				ready++
			}
		}
		fresh := map[uint64]codec.Event{} // events read by this scan
		if want := n + 64; ready < want && len(st.Pending) < maxPending {
			stopped := false
			frontier := st.SkipFrontier
			next, err := g.s.scanGroup(st.Next, func(rec *codec.Record) error {
				st.Next = rec.Position + 1
				if !g.match(rec) {
					return nil
				}
				if _, held := st.Pending[rec.Position]; held {
					return nil // leased across a reset (Lease.Again)
				}
				stream := string(rec.Stream)
				st.Pending[rec.Position] = &Lease{Stream: stream}
				delete(st.Parked, rec.Position) // delivered again (a reset): no longer parked
				fresh[rec.Position] = rec.Event()
				_, busy := first[stream]
				if !busy {
					first[stream] = rec.Position
				}
				if !ordered || chain && !stuck[stream] || !busy {
					ready++
				}
				if ready >= want || len(st.Pending) >= maxPending {
					stopped = true
					return errStop
				}
				return nil
			}, func(rec *codec.Record) error {
				if rec.Position >= frontier && g.match(rec) {
					st.Skipped++ // removed by retention before the group got to it
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !stopped {
				st.Next = max(st.Next, next)
			}
			st.SkipFrontier = max(st.SkipFrontier, st.Next)
		}
		// Hand out in position order.
		positions := make([]uint64, 0, len(st.Pending))
		for p := range st.Pending {
			positions = append(positions, p)
		}
		sort.Slice(positions, func(i, j int) bool { return positions[i] < positions[j] })
		blocked := map[string]bool{}
		var read func(uint64) (codec.Event, error) // made on first use
		for _, p := range positions {
			if len(out) >= n {
				break
			}
			l := st.Pending[p]
			ordered := g.cfg.Ordering != "none"
			if l.Member == "" && now.Before(l.NotBefore) && (retryAt.IsZero() || l.NotBefore.Before(retryAt)) {
				retryAt = l.NotBefore
			}
			if l.Member != "" || now.Before(l.NotBefore) || ordered && blocked[l.Stream] {
				if ordered {
					blocked[l.Stream] = true
				}
				continue
			}
			ev, ok := fresh[p]
			if !ok {
				var err error
				if read == nil {
					if read, err = g.s.positionReader(); err != nil {
						return err
					}
				}
				if ev, err = read(p); err != nil {
					if errors.Is(err, log.ErrNotFound) {
						delete(st.Pending, p) // gone from the log
						if g.s.expiredAt(p) && l.Member == "" {
							st.Skipped++
						}
						continue
					}
					return err
				}
			}
			st.Tokens++
			l.Member, l.Token, l.Manual = m.id, st.Tokens, m.manual
			if !m.manual {
				m.held[p] = l.Token
			}
			l.Deadline = now.Add(g.cfg.AckWait)
			l.Deliveries++
			out = append(out, log.Delivery{Event: ev, Deliveries: l.Deliveries, Deadline: l.Deadline})
			if ordered && !chain {
				blocked[l.Stream] = true
			}
		}
		m.news = 0
		if st.Skipped > st.Announced {
			m.news, st.Announced = st.Skipped-st.Announced, st.Skipped
		}
		return nil
	})
	return out, retryAt, err
}

// reclaim returns expired leases and leases of dead members to waiting,
// parking those that used up their deliveries. self, if not nil, is the
// caller's own member.
func (g *Group) reclaim(st *GroupState, now time.Time, self *Member) {
	dead := map[string]bool{}
	for p, l := range st.Pending {
		if l.Member == "" {
			continue
		}
		late := now.After(l.Deadline)
		if !late && !l.Manual { // a manual lease outlives its member
			if _, known := dead[l.Member]; !known {
				dead[l.Member] = !g.alive(l.Member, self)
			}
		}
		if !late && !dead[l.Member] {
			continue
		}
		reason := "not acked within " + g.cfg.AckWait.String()
		if !late {
			reason = "member " + l.Member + " died"
		}
		l.Member, l.LastError = "", reason
		if l.Again {
			requeue(l)
		} else if l.Deliveries >= g.cfg.MaxDeliver {
			g.park(st, p, l, now)
		}
	}
}

// requeue makes a lease that a reset went over (Lease.Again) a new event
// waiting for its first delivery, once its holder is done with it.
func requeue(l *Lease) {
	l.Member, l.Token, l.Deliveries, l.Again, l.LastError, l.NotBefore = "", 0, 0, false, "", time.Time{}
}

// done marks the event at p handled: gone from pending, or, if a reset
// went over it while it was leased, waiting for its first delivery again.
func done(st *GroupState, p uint64) {
	if l := st.Pending[p]; l != nil && l.Again {
		requeue(l)
		return
	}
	delete(st.Pending, p)
}

func (g *Group) park(st *GroupState, p uint64, l *Lease, now time.Time) {
	typ := ""
	if ev, err := g.s.ReadAt(p); err == nil {
		typ = ev.Type
	}
	st.Parked[p] = Parked{Stream: l.Stream, Type: typ, Deliveries: l.Deliveries, Reason: l.LastError, At: now}
	delete(st.Pending, p)
}

// mine reports whether this member may answer for the lease on p (ack,
// nack, renew, return it): the lease it was handed, by its token, still
// its own or back to waiting unclaimed. A lease that expired and went to
// another member is that member's to answer: it may still be handling
// the event, and an early ack would let the stream's next event overtake
// it. One queued again by a reset has a new token.
func (m *Member) mine(st *GroupState, p uint64) (*Lease, bool) {
	l, ok := st.Pending[p]
	tok, held := m.held[p]
	if !ok || !held || l.Token != tok || l.Member != m.id && l.Member != "" {
		return nil, false
	}
	return l, true
}

// ackOwn acks positions this member holds (see mine).
func (m *Member) ackOwn(st *GroupState, positions []uint64) {
	for _, p := range positions {
		if _, ok := m.mine(st, p); ok {
			done(st, p)
		}
		delete(m.held, p)
	}
}

// Ack acks events this member handled (see mine).
func (m *Member) Ack(ctx context.Context, positions ...uint64) error {
	return m.g.Update(func(st *GroupState) error {
		m.ackOwn(st, positions)
		return nil
	})
}

// Renew extends this member's lease on position p to a full ack wait
// from now and returns its new deadline, if the member still holds it:
// not acked, not expired, not handed to another member. ok is false
// otherwise, and the member must not start handling the event: a
// member that handles a batch one event after another renews each
// event's lease before its handler starts, so no handler starts on an
// event whose lease ran out while the ones before it ran.
func (m *Member) Renew(ctx context.Context, p uint64) (deadline time.Time, ok bool, err error) {
	now := time.Now()
	err = m.g.Update(func(st *GroupState) error {
		ok = false
		l, mine := m.mine(st, p)
		if !mine || l.Member != m.id || !now.Before(l.Deadline) {
			return nil
		}
		l.Deadline = now.Add(m.g.cfg.AckWait)
		deadline, ok = l.Deadline, true
		return nil
	})
	return deadline, ok, err
}

// Return hands leased events back unhandled, not counting the delivery:
// the rest of a stream's batch after one of its events failed.
func (m *Member) Return(ctx context.Context, positions ...uint64) error {
	return m.g.Update(func(st *GroupState) error {
		for _, p := range positions {
			if l, ok := m.mine(st, p); ok && l.Member == m.id {
				l.Member = ""
				l.Deliveries--
				if l.Again {
					requeue(l)
				}
			}
			delete(m.held, p)
		}
		return nil
	})
}

// Ack marks positions handled that a --manual-ack member was handed and
// still holds (evt ack): leased manually, its deadline not passed. It
// returns how many it acked; anything else is left alone: an event the
// group only read ahead (never delivered), acked already, whose lease ran
// out, or held by a member that acks its own (it may be running it now).
func (g *Group) Ack(ctx context.Context, positions ...uint64) (int, error) {
	n := 0
	now := time.Now()
	err := g.Update(func(st *GroupState) error {
		n = 0
		for _, p := range positions {
			if l, ok := st.Pending[p]; ok && l.Member != "" && l.Manual && now.Before(l.Deadline) {
				done(st, p)
				n++
			}
		}
		return nil
	})
	return n, err
}

// Nack returns a leased event for redelivery after a backoff, recording
// why; it is parked if it used up its deliveries.
func (m *Member) Nack(ctx context.Context, p uint64, reason string) error {
	now := time.Now()
	return m.g.Update(func(st *GroupState) error {
		l, ok := m.mine(st, p)
		delete(m.held, p)
		if !ok || l.Member != m.id {
			return nil // acked, or now another member's: theirs to report
		}
		l.Member, l.LastError = "", reason
		if l.Again {
			requeue(l)
			return nil
		}
		if l.Deliveries >= m.g.cfg.MaxDeliver {
			m.g.park(st, p, l, now)
			return nil
		}
		// 200 ms, doubling, at most 10 s.
		backoff := 200 * time.Millisecond << min(l.Deliveries-1, 6)
		l.NotBefore = now.Add(min(backoff, 10*time.Second))
		return nil
	})
}

// release returns this member's leases to waiting (a clean shutdown),
// but for manual ones: they wait for evt ack or their deadline.
func (m *Member) release() error {
	return m.g.Update(func(st *GroupState) error {
		for _, l := range st.Pending {
			if l.Member == m.id && !l.Manual {
				l.Member = ""
				l.Deliveries-- // not a failed delivery
				if l.Again {
					requeue(l)
				}
			}
		}
		return nil
	})
}

// Reset moves the group to position p: everything from p on is delivered
// again (or, forward, skipped); parked events are kept. Leases before p
// are dropped (their holders' answers are ignored). A lease from p on
// stays with its holder, marked Again: while its handler may still run,
// nobody else gets the event (nor, with ordering stream, its stream's
// next one), and once the holder is done with it, however, it is
// delivered again from its first delivery, as the reset asked.
//
// The count of a dry run or of the reset is of the selected events
// between the group's scan frontier and p.
func (g *Group) Reset(ctx context.Context, p uint64, dryRun bool) (log.ResetResult, error) {
	st, err := g.read()
	if err != nil {
		return log.ResetResult{}, err
	}
	res := log.ResetResult{From: st.Committed, To: p}
	lo, hi := p, st.Next
	if p > st.Next {
		lo, hi = st.Next, p
	}
	if _, err := g.s.scanFrom(lo, func(rec *codec.Record) error {
		if rec.Position >= hi {
			return ErrStop
		}
		if g.match(rec) {
			res.Events++
		}
		return nil
	}); err != nil {
		return res, err
	}
	if dryRun {
		return res, nil
	}
	update := func(st *GroupState) error {
		st.Next = p
		st.SkipFrontier = max(st.SkipFrontier, p) // skipped by the reset, not by retention
		kept := map[uint64]*Lease{}
		for q, l := range st.Pending {
			if q >= p && l.Member != "" {
				l.Again = true
				kept[q] = l
			}
		}
		st.Pending = kept
		return nil
	}
	if p >= st.Committed {
		return res, g.Update(update)
	}
	// Backward: until-acked must not bring back what it expired.
	return res, g.s.lowering(func() error { return g.updateLocked(update) })
}

// Retry re-queues parked events (all when positions is empty) and returns
// how many.
func (g *Group) Retry(ctx context.Context, positions ...uint64) (int, error) {
	n := 0
	err := g.Update(func(st *GroupState) error {
		n = 0
		for p, pk := range st.Parked {
			if len(positions) > 0 && !containsPos(positions, p) {
				continue
			}
			st.Pending[p] = &Lease{Stream: pk.Stream}
			delete(st.Parked, p)
			n++
		}
		return nil
	})
	return n, err
}

func containsPos(ps []uint64, p uint64) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// scanFrom is Scan for a group: from a position that may lie before the
// retained start (it then starts there).
func (s *Store) scanFrom(from uint64, fn func(rec *codec.Record) error) (uint64, error) {
	first, _, err := s.Bounds()
	if err != nil {
		return 0, err
	}
	return s.Scan(max(from, first), fn)
}

func (s *Store) writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteFS(s.fsys, path, b, 0o600)
}
