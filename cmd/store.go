package cmd

import (
	"errors"
	"fmt"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
)

// openStore opens the store for reading, or for appending with create
// (which makes the directory on first use). Readers never create a store.
//
// This file is the one place cmd names the local store: every command
// holds a log.Store.
//
// A nats store (--store nats://...) is opened by the opener evt-nats
// registers (remote.go); the evt binary never gets here with one, as it
// hands such a command to evt-nats first.
func (g *globalOptions) openStore(create bool) (log.Store, error) {
	if g.kept != nil {
		return keptOpen{g.kept}, nil
	}
	if g.remote != "" {
		return g.openRemote(create)
	}
	return g.open(local.Options{Create: create})
}

// keptOpen is a store a command is lent: its Close leaves it open.
type keptOpen struct{ log.Store }

func (keptOpen) Close() error { return nil }

// openUnrecovered opens the store for reading without the recovery an
// open runs after a reboot or when a derived file is missing: evt verify
// reports such a file instead of letting the open quietly rebuild it.
func (g *globalOptions) openUnrecovered() (log.Store, error) {
	if g.remote != "" {
		return g.openRemote(false)
	}
	if !g.storeExists() {
		return nil, errNoStore(g.StoreDir())
	}
	return g.open(local.Options{NoRecover: true})
}

// storeExists reports whether the store has been created.
// A nats store is taken to exist: opening it to read says when it does
// not (ErrNoStore).
func (g *globalOptions) storeExists() bool { return g.remote != "" || local.Exists(g.StoreDir()) }

// storeLocation is where the store is, for messages.
func (g *globalOptions) storeLocation() string {
	if g.remote != "" {
		return g.remote
	}
	return g.StoreDir()
}

// defaultSegmentSize is the --segment-size default.
const defaultSegmentSize = local.DefaultSegmentSize

// unsupportedError is CLI.md's "<what> is not supported by a nats store";
// it wraps log.ErrUnsupported (exit 2).
type unsupportedError struct{ what string }

func (e *unsupportedError) Error() string { return e.what + " is not supported by a nats store" }
func (e *unsupportedError) Unwrap() error { return log.ErrUnsupported }

// unsupported says a nats store cannot do what.
func unsupported(what string) error { return &unsupportedError{what: what} }

// unsupportedBy says s cannot do what: in CLI.md's words on a nats store.
func unsupportedBy(s log.Store, what string) error {
	if _, ok := s.(*local.Store); ok {
		return fmt.Errorf("%s: %w", what, log.ErrUnsupported)
	}
	return unsupported(what)
}

func (g *globalOptions) open(opts local.Options) (log.Store, error) {
	dir := g.StoreDir()
	if dir == "" {
		return nil, errors.New("no store directory: set --dir or EVT_DIR (neither XDG_DATA_HOME nor HOME is set)")
	}
	sync, err := local.ParseSyncPolicy(g.Sync)
	if err != nil {
		return nil, usageErrorf("--sync: %w", err)
	}
	if g.SegmentSize < 4096 {
		return nil, usageErrorf("--segment-size: %d bytes is too small (at least 4096)", g.SegmentSize)
	}
	opts.Sync, opts.LockTimeout, opts.SegmentSize = sync, g.LockTimeout, g.SegmentSize
	s, err := local.Open(dir, opts)
	if err != nil {
		if errors.Is(err, log.ErrNoStore) {
			return nil, errNoStore(dir)
		}
		return nil, err
	}
	return s, nil
}

// openExisting opens the store for writing, without creating it: the
// commands that change a store's policy or shape have nothing to do in a
// store that does not exist.
func openExisting(g *globalOptions) (log.Store, error) {
	if g.remote != "" {
		return g.openRemote(false)
	}
	if !g.storeExists() {
		return nil, errNoStore(g.StoreDir())
	}
	return g.openStore(true)
}

// printer returns the printer for this command's output. listing says the
// command prints rows (a table on a terminal) rather than events.
func (g *globalOptions) printer() (*output.Printer, error) {
	return g.printerPiped("")
}

// printerPiped is printer with another automatic format for a pipe: fold
// rows carry JSON states, which tab-separated text would mangle.
func (g *globalOptions) printerPiped(piped string) (*output.Printer, error) {
	return g.printerFor(piped, false)
}

// metricsPrinter is printer for a command that has metrics to print with
// -o prometheus (group ls, stats; see output.WriteMetrics).
func (g *globalOptions) metricsPrinter() (*output.Printer, error) {
	return g.printerFor("", true)
}

// printerFor is printer with piped as the automatic format of a pipe;
// metrics says whether the command prints -o prometheus.
func (g *globalOptions) printerFor(piped string, metrics bool) (*output.Printer, error) {
	format := g.Output
	if format == "" && !g.IO.IsStdoutTTY() {
		format = piped
	}
	p, err := output.NewPrinter(g.IO.Out, format, g.IO.IsStdoutTTY())
	if err != nil {
		return nil, usageErrorf("-o: %w", err)
	}
	p.SetColor(g.IO.ColorEnabled())
	if g.IO.IsStdoutTTY() {
		p.SetWidth(g.IO.KnownWidth()) // tables fit the terminal
	}
	if p.Format() == output.FormatPrometheus && !metrics {
		return nil, usageErrorf("-o prometheus is for group ls and stats, which have metrics")
	}
	if p.Format() == output.FormatPrometheus && g.JQ != "" {
		return nil, usageErrorf("--jq and -o prometheus exclude each other")
	}
	if g.JQ != "" && (p.Format() == output.FormatTemplate || p.Format() == output.FormatTable) {
		// --jq prints its own results (strings raw, the rest as JSON,
		// indented with -o pretty, as YAML with -o yaml): a template or
		// a table would silently not apply.
		name := p.Format()
		if name == output.FormatTemplate {
			name = "template=..."
		}
		return nil, usageErrorf("--jq and -o %s exclude each other (--jq prints its results as JSON; -o pretty or yaml format them, and a jq string prints raw)", name)
	}
	if g.JQ != "" {
		j, err := output.CompileJQ(g.JQ)
		if err != nil {
			return nil, usageErrorf("--jq: %w", err)
		}
		p.SetJQ(j)
	}
	return p, nil
}

// eventPrinter is printer for a command that prints events (tail,
// replay, consume, append -o): an -o template that names a key no event
// has is refused before anything is read, rather than at the first event,
// which tail -f may wait long for. Like a template failing on an event,
// it is an error (exit 1), not a usage error.
func (g *globalOptions) eventPrinter() (*output.Printer, error) {
	p, err := g.printer()
	if err != nil {
		return nil, err
	}
	if err := output.CheckEventTemplate(g.Output); err != nil {
		return nil, err
	}
	return p, nil
}

// errNoStore is the one message for a store that does not exist (exit 4).
func errNoStore(dir string) error {
	return fmt.Errorf("%w at %s (append an event to create it)", log.ErrNoStore, dir)
}
