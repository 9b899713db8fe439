package cmd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// A store that is not a directory (nats://, tls://) is opened by a
// RemoteOpener, which only a second binary registers: cmd/evt-nats links
// the JetStream client, the evt binary does not, because nats.go's
// package initialisation alone costs every process most of a millisecond
// (../shared/STARTUP.md), a fifth of an `evt append`. When the store is
// remote and nothing is registered, evt hands the whole command line to
// evt-nats, the way git runs its remote helpers (see execRemote).

// RemoteSettings are the connection settings of a remote store: the
// nats-* flags, EVT_NATS_* variables and the config file's nats: block.
type RemoteSettings struct {
	Timeout    time.Duration
	Creds      string
	Context    string
	Replicas   int
	IDLookback time.Duration // < 0: every event of the stream ("all")
}

// RemoteOpener opens the remote store at url; create says the command
// appends and may create the store.
type RemoteOpener func(url string, settings RemoteSettings, create bool) (log.Store, error)

var remoteOpener RemoteOpener

// RegisterRemote makes the process open remote stores with open (the
// evt-nats binary calls it before Main).
func RegisterRemote(open RemoteOpener) { remoteOpener = open }

// remoteHelper is the binary evt hands a remote store's commands to.
const remoteHelper = "evt-nats"

// isRemoteStore reports whether a --store value names a remote store.
func isRemoteStore(v string) bool {
	return strings.HasPrefix(v, "nats://") || strings.HasPrefix(v, "tls://")
}

// natsOptions are the nats-* global flags.
type natsOptions struct {
	Timeout    time.Duration
	Creds      string
	Context    string
	Replicas   int
	IDLookback string
}

func addNatsFlags(pf *pflag.FlagSet, o *natsOptions) {
	durationVar(pf, &o.Timeout, "nats-timeout", 5*time.Second, true, "nats store: how long to wait for the server (connecting, each request)")
	pf.StringVar(&o.Creds, "nats-creds", "", "nats store: credentials file")
	pf.StringVar(&o.Context, "nats-context", "", "nats store: a nats CLI context to take servers and credentials from")
	pf.IntVar(&o.Replicas, "nats-replicas", 0, "nats store: replicas of a stream evt creates (0: min(3, cluster size))")
	pf.StringVar(&o.IDLookback, "nats-id-lookback", "1h", "nats store: how far back an append looks for the ids it is given (a duration, or all)")
}

// natsFlag reports whether a flag is one of the nats-* settings, which
// the config file sets in its nats: block (nats-id-lookback is
// nats.id_lookback).
func natsFlag(name string) (key string, ok bool) {
	rest, ok := strings.CutPrefix(name, "nats-")
	if !ok {
		return "", false
	}
	return "nats." + strings.ReplaceAll(rest, "-", "_"), true
}

func (g *globalOptions) remoteSettings() (RemoteSettings, error) {
	s := RemoteSettings{Timeout: g.Nats.Timeout, Creds: g.Nats.Creds, Context: g.Nats.Context, Replicas: g.Nats.Replicas}
	if s.Replicas < 0 {
		return s, usageErrorf("--nats-replicas: %d: want 0 (automatic) or more", s.Replicas)
	}
	switch v := g.Nats.IDLookback; v {
	case "all":
		s.IDLookback = -1
	default:
		d, err := codec.ParseDuration(v)
		if err != nil || d <= 0 {
			return s, usageErrorf("--nats-id-lookback: invalid value %q: want a duration such as 10m or 1h, or all", v)
		}
		s.IDLookback = d
	}
	return s, nil
}

// resolveStore settles where the log lives from --dir and --store, which
// are one setting for precedence (flag > env > file): the one set at the
// higher level wins, and two at the same level that disagree are a usage
// error. A --store that is a path or file://PATH is the local store.
func (g *globalOptions) resolveStore() error {
	g.remote = ""
	g.storeFrom = g.Source("dir")
	store := g.Store
	if store == "" {
		return nil
	}
	if !isRemoteStore(store) {
		if strings.Contains(store, "://") && !strings.HasPrefix(store, "file://") {
			return usageErrorf("--store %s: want a directory, file://DIR, nats://HOST:PORT[,HOST:PORT...][/NAME] or tls://...", store)
		}
		store = strings.TrimPrefix(store, "file://")
	}
	rank := map[string]int{sourceFlag: 3, sourceEnv: 2, sourceFile: 1, sourceDefault: 0}
	ds, ss := rank[g.Source("dir")], rank[g.Source("store")]
	if g.Dir != "" && ds == ss {
		if isRemoteStore(store) || filepath.Clean(expandHome(store)) != filepath.Clean(expandHome(g.Dir)) {
			where := map[int]string{3: "on the command line", 2: "in the environment", 1: "in the config file"}[ss]
			return usageErrorf("--dir %s and --store %s are both set %s and disagree: give one", g.Dir, g.Store, where)
		}
	}
	if g.Dir != "" && ds > ss {
		return nil // --dir wins
	}
	g.storeFrom = g.Source("store")
	if isRemoteStore(store) {
		g.remote = store
		return g.localOnlySettings()
	}
	g.Dir = store
	return nil
}

// execRemote hands the command line to evt-nats when the store is remote
// and this binary cannot open one. It runs before the command reads its
// input or opens anything, so the helper sees the same stdin, arguments
// and environment; it returns only on failure.
func (g *globalOptions) execRemote() error {
	if g.remote == "" || remoteOpener != nil {
		return nil
	}
	return execHelper(remoteHelper, fmt.Sprintf("the store %s is a nats store, which needs %s", g.remote, remoteHelper), "./cmd/evt-nats")
}

// execHelper runs the helper binary name (found beside evt, else on
// $PATH) in this process's place, with the same arguments, input and
// environment; it returns only on failure. why says what needs the
// helper, pkg is where its source is, for the message that says how to
// build it.
func execHelper(name, why, pkg string) error {
	path := ""
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), name); isFile(p) {
			path = p
		}
	}
	if path == "" {
		p, err := exec.LookPath(name)
		if err != nil {
			return fmt.Errorf("%s beside evt or on $PATH: build it with `go build -o \"$(dirname \"$(command -v evt)\")\" %s` in evt's source", why, pkg)
		}
		path = p
	}
	err := syscall.Exec(path, append([]string{name}, os.Args[1:]...), os.Environ())
	return fmt.Errorf("run %s: %w", path, err)
}

// openRemote opens the remote store through the registered opener.
func (g *globalOptions) openRemote(create bool) (log.Store, error) {
	if remoteOpener == nil {
		return nil, errors.New("internal error: a nats store without the nats client (evt-nats)")
	}
	settings, err := g.remoteSettings()
	if err != nil {
		return nil, err
	}
	return remoteOpener(g.remote, settings, create)
}

// localOnlyFlags are the settings only a store directory has.
var localOnlyFlags = []string{"sync", "segment-size", "lock-timeout"}

// localOnlySettings refuses, on a nats store, a setting only a directory
// has when it is given on the command line (exit 2, CLI.md "Stores"), and
// says in one line that it is ignored when it comes from the environment.
// From the config file it is ignored silently: one file often serves
// local stores and a nats one, and a warning on every command would be
// noise (a deviation from CLI.md, which asks for the warning there too).
func (g *globalOptions) localOnlySettings() error {
	for _, name := range localOnlyFlags {
		switch g.Source(name) {
		case sourceFlag:
			return &usageError{unsupported("--" + name)}
		case sourceEnv:
			fmt.Fprintf(g.IO.ErrOut, "evt: warning: %s (from %s) is ignored: a nats store has no such setting\n", name, g.Source(name))
		}
	}
	return nil
}
