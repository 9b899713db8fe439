package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/log"
)

// Defaults of Options.
const (
	DefaultStream       = "EVT"
	DefaultTimeout      = 5 * time.Second
	DefaultDedupeWindow = 2 * time.Minute
	DefaultIDLookback   = time.Hour
)

// MinServerVersion is the oldest nats-server evt runs on: atomic batch
// publish with dedupe came in 2.12.1, the consumer reset API (groups) in
// 2.14.
const MinServerVersion = "2.14.0"

// Options say how to reach the server and how to create the stream.
type Options struct {
	// Create makes the JetStream stream when it does not exist (the
	// commands that append); without it a missing stream is
	// log.ErrNoStore, as a missing directory is for the local store.
	Create bool
	// Timeout bounds connecting and each request (DefaultTimeout if 0).
	Timeout time.Duration
	// Replicas of a stream evt creates; 0 is min(3, servers known).
	Replicas int
	// DedupeWindow is the stream's duplicate window when evt creates it.
	DedupeWindow time.Duration
	// IDLookback is how far back an append looks for the ids it is
	// given (a retry's events): DefaultIDLookback if 0, the whole stream
	// if negative. Retries are recognised exactly with an expectation,
	// and otherwise within this window (CLI.md, "Stores").
	IDLookback time.Duration
	// Creds is a credentials file (nats.UserCredentials).
	Creds string
	// Context is the name of a nats CLI context whose server, credentials
	// and TLS files to use; the store URL's servers win over its own.
	Context string
	// Dial are more connection options (tests connect in process).
	Dial []nats.Option
}

// Store is a log.Store on one JetStream stream (see the package doc). It
// is used by one goroutine at a time, as log.Store says.
type Store struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	name     string // the JetStream stream
	root     string // the first subject token: every evt stream lives under ROOT.>
	opts     Options
	where    string // the URL without credentials, for messages
	created  time.Time
	exists   bool // the JetStream stream exists (false only while nothing was appended)
	replicas int  // of the JetStream stream
	direct   bool // the JetStream stream answers direct gets (allow_direct)
	api      string
	// schemas is the stream's evt_schemas metadata flag as the open read
	// it: the store may keep JSON Schemas (see schema.go).
	schemas bool
	hooks   compactHooks
}

var _ log.Store = (*Store)(nil)

var streamName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ParseURL splits a store URL, nats://HOST:PORT[,HOST:PORT…][/NAME] or
// tls://…, into the server list nats.Connect takes and the stream name
// (DefaultStream when there is no path).
func ParseURL(raw string) (servers, stream string, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "nats" && scheme != "tls") {
		return "", "", fmt.Errorf("nats: store URL %q: want nats://HOST:PORT[,HOST:PORT...][/NAME] or tls://...", raw)
	}
	hosts, path, _ := strings.Cut(rest, "/")
	stream = DefaultStream
	if path != "" {
		if !streamName.MatchString(path) {
			return "", "", fmt.Errorf("nats: store URL %q: stream name %q: want letters, digits, _ and -", raw, path)
		}
		stream = path
	}
	var list []string
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			continue
		}
		if strings.Contains(h, "://") {
			list = append(list, h)
		} else {
			list = append(list, scheme+"://"+h)
		}
	}
	return strings.Join(list, ","), stream, nil
}

// redact drops user information from a server list, for messages.
func redact(servers string) string {
	var out []string
	for _, s := range strings.Split(servers, ",") {
		if u, err := url.Parse(s); err == nil && u.User != nil {
			u.User = nil
			s = u.String()
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// Open connects to the store at rawURL (see ParseURL).
func Open(rawURL string, opts Options) (*Store, error) {
	servers, stream, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.DedupeWindow <= 0 {
		opts.DedupeWindow = DefaultDedupeWindow
	}
	if opts.IDLookback == 0 {
		opts.IDLookback = DefaultIDLookback
	}
	dial := []nats.Option{nats.Timeout(opts.Timeout), nats.Name("evt"), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}
	if opts.Context != "" {
		ctxServers, ctxOpts, err := readContext(opts.Context)
		if err != nil {
			return nil, err
		}
		if servers == "" {
			servers = ctxServers
		}
		dial = append(dial, ctxOpts...)
	}
	if opts.Creds != "" {
		dial = append(dial, nats.UserCredentials(expandHome(opts.Creds)))
	}
	dial = append(dial, opts.Dial...)
	if servers == "" {
		servers = nats.DefaultURL
	}
	where := redact(servers)
	nc, err := nats.Connect(servers, dial...)
	if err != nil {
		return nil, fmt.Errorf("nats: cannot connect to %s: %w", where, err)
	}
	s, err := openConn(nc, stream, where, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return s, nil
}

func openConn(nc *nats.Conn, stream, where string, opts Options) (*Store, error) {
	if err := checkVersion(nc.ConnectedServerVersion(), where); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	s := &Store{nc: nc, js: js, name: stream, root: rootOf(stream), opts: opts, where: where, api: "$JS.API."}
	ctx, cancel := s.ctx()
	defer cancel()
	info, err := s.streamInfo(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if !opts.Create {
			return nil, &noStoreError{err: fmt.Errorf("%w at %s/%s (append an event to create it)", log.ErrNoStore, where, stream), version: nc.ConnectedServerVersion()}
		}
		if err := s.create(ctx); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, s.wrap("read the stream's settings", err)
	default:
		if err := s.checkConfig(info.Config); err != nil {
			return nil, err
		}
		s.exists, s.created, s.replicas, s.direct = true, info.Created, info.Config.Replicas, info.Config.AllowDirect
		s.schemas = info.Config.Metadata[mdSchemas] == "1"
	}
	return s, nil
}

// noStoreError is log.ErrNoStore from a server that answered: it says
// the server's version too (evt config shows it).
type noStoreError struct {
	err     error
	version string
}

func (e *noStoreError) Error() string { return e.err.Error() }
func (e *noStoreError) Unwrap() error { return e.err }

// ServerVersion is the version of the server that has no such stream.
func (e *noStoreError) ServerVersion() string { return e.version }

// rootOf is the first subject token of a store: "evt" for the default
// stream, and one of its own for any other, as two JetStream streams of
// one account may not share subjects.
func rootOf(stream string) string {
	if stream == DefaultStream {
		return "evt"
	}
	return "evt_" + stream
}

// checkVersion refuses a server older than MinServerVersion.
func checkVersion(v, where string) error {
	if versionLess(v, MinServerVersion) {
		return fmt.Errorf("nats: server %s at %s is too old: evt needs nats-server %s or newer (atomic batches, consumer reset)", v, where, strings.TrimSuffix(MinServerVersion, ".0"))
	}
	return nil
}

// versionLess compares dotted versions numerically ("2.9.10" < "2.14.0").
func versionLess(a, b string) bool {
	pa, pb := strings.Split(strings.TrimPrefix(a, "v"), "."), strings.Split(b, ".")
	for i := range 3 {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(strings.FieldsFunc(pa[i], func(r rune) bool { return r == '-' || r == '+' })[0])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// streamConfig is the stream evt creates. No MaxAge, per-subject limit,
// TTLs or delete markers: each would remove a stream's newest message,
// and with it the stream's version (retention is a view, compaction
// purges below each stream's head).
func (s *Store) streamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               s.name,
		Description:        "evt event store",
		Subjects:           []string{s.root + ".>"},
		Storage:            jetstream.FileStorage,
		Replicas:           replicas,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardOld,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxMsgsPerSubject:  -1,
		Duplicates:         s.opts.DedupeWindow,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		Metadata:           map[string]string{"evt_format": "1", "evt_buckets": strconv.Itoa(Buckets), "evt_hash": "fnv1a32"},
	}
}

func (s *Store) create(ctx context.Context) error {
	replicas := s.opts.Replicas
	if replicas <= 0 {
		replicas = 1
		if s.nc.ConnectedClusterName() != "" {
			replicas = min(3, max(1, len(s.nc.Servers())))
		}
	}
	st, err := s.js.CreateStream(ctx, s.streamConfig(replicas))
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Another process created it first: fine if it is evt's.
		info, err := s.streamInfo(ctx)
		if err != nil {
			return s.wrap("read the stream's settings", err)
		}
		if err := s.checkConfig(info.Config); err != nil {
			return err
		}
		s.exists, s.created, s.replicas, s.direct = true, info.Created, info.Config.Replicas, info.Config.AllowDirect
		return nil
	}
	if err != nil {
		return s.wrap("create stream "+s.name, err)
	}
	s.exists, s.created, s.replicas, s.direct = true, st.CachedInfo().Created, replicas, true
	return nil
}

// checkConfig says which setting of a pre-existing stream keeps evt from
// using it.
func (s *Store) checkConfig(c jetstream.StreamConfig) error {
	bad := func(what string) error {
		return fmt.Errorf("nats: stream %s at %s is not an evt store: %s", s.name, s.where, what)
	}
	switch {
	case len(c.Subjects) != 1 || c.Subjects[0] != s.root+".>":
		return bad(fmt.Sprintf("its subjects are %v, evt needs [%s.>]", c.Subjects, s.root))
	case c.Metadata["evt_format"] != "1":
		return bad("it has no evt_format=1 in its metadata")
	case c.Metadata["evt_buckets"] != strconv.Itoa(Buckets) || c.Metadata["evt_hash"] != "fnv1a32":
		return bad(fmt.Sprintf("its metadata says evt_buckets=%s evt_hash=%s, evt needs %d and fnv1a32", c.Metadata["evt_buckets"], c.Metadata["evt_hash"], Buckets))
	case !c.AllowAtomicPublish:
		return bad("allow_atomic is off (evt's batches need atomic publish)")
	case c.DenyPurge:
		return bad("deny_purge is on (delete, truncate and compact purge)")
	case c.Retention != jetstream.LimitsPolicy:
		return bad(fmt.Sprintf("its retention is %s, evt needs limits", c.Retention))
	case c.MaxAge > 0:
		return bad(fmt.Sprintf("max_age is %s, evt needs none (it would remove a stream's newest event and its version; use evt retention)", c.MaxAge))
	case c.MaxMsgsPerSubject > 0:
		return bad(fmt.Sprintf("max_msgs_per_subject is %d, evt needs none (use evt retention set --max-count)", c.MaxMsgsPerSubject))
	case c.MaxMsgs > 0 || c.MaxBytes > 0:
		return bad("max_msgs or max_bytes is set, evt needs neither (they would remove streams' newest events)")
	case c.AllowMsgTTL || c.SubjectDeleteMarkerTTL > 0:
		return bad("per-message TTLs or subject delete markers are on, evt needs neither")
	}
	return nil
}

// Close closes the connection.
func (s *Store) Close() error {
	if s.nc == nil {
		return nil
	}
	// Drain would wait for subscriptions evt no longer reads; a flush
	// is what makes earlier publishes reach the server.
	err := s.nc.FlushTimeout(s.opts.Timeout)
	s.nc.Close()
	s.nc = nil
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("nats: %w", err)
	}
	return nil
}

// Location is where the store is, for messages: the servers and stream.
func (s *Store) Location() string { return s.where + "/" + s.name }

// ServerVersion is the version of the server the store is connected to.
func (s *Store) ServerVersion() string { return s.nc.ConnectedServerVersion() }

// ctx bounds one request by the timeout.
func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.Timeout)
}

// wrap makes a server or connection error one line in evt's words.
func (s *Store) wrap(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return fmt.Errorf("nats: %s: no answer from %s within %s", what, s.where, s.opts.Timeout)
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return fmt.Errorf("nats: %s: JetStream is not enabled on %s (or the stream has no leader)", what, s.where)
	}
	return fmt.Errorf("nats: %s: %w", what, err)
}

// natsContext is the part of a nats CLI context file evt reads.
type natsContext struct {
	URL      string `json:"url"`
	Creds    string `json:"creds"`
	NKey     string `json:"nkey"`
	User     string `json:"user"`
	Password string `json:"password"`
	Token    string `json:"token"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
	CA       string `json:"ca"`
}

// readContext reads the nats CLI context NAME
// ($XDG_CONFIG_HOME/nats/context/NAME.json).
func readContext(name string) (string, []nats.Option, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", nil, fmt.Errorf("nats: context %s: %w", name, err)
		}
		dir = filepath.Join(home, ".config")
	}
	path := filepath.Join(dir, "nats", "context", name+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("nats: context %s: %w", name, err)
	}
	var c natsContext
	if err := json.Unmarshal(data, &c); err != nil {
		return "", nil, fmt.Errorf("nats: context %s: %s: %w", name, path, err)
	}
	var opts []nats.Option
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(expandHome(c.Creds)))
	case c.NKey != "":
		o, err := nats.NkeyOptionFromSeed(expandHome(c.NKey))
		if err != nil {
			return "", nil, fmt.Errorf("nats: context %s: %w", name, err)
		}
		opts = append(opts, o)
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Cert != "" && c.Key != "" {
		opts = append(opts, nats.ClientCert(expandHome(c.Cert), expandHome(c.Key)))
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(expandHome(c.CA)))
	}
	return c.URL, opts, nil
}

func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, p[1:])
}
