package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/archive"
)

type exportOptions struct {
	From  string
	To    string
	Types []string
}

func newExportCmd(g *globalOptions) *cobra.Command {
	o := &exportOptions{}
	cmd := &cobra.Command{
		Use:   "export [SELECTION...]",
		Short: "Write events as NDJSON envelopes that evt import restores",
		Long: `Write every event of a selection (every stream by default; several
selections: their union) from --from
(default start) to --to (inclusive; default the end of the log when the
export starts), in position order, one envelope per line: stream, type,
data, metadata, id and time, which evt import keeps, and position and
version, for information.

The output is always NDJSON, on a terminal too: -o json is the only
format, and --jq is for evt replay. A progress bar goes to stderr when
stderr is a terminal.`,
		Example: `  evt export > backup.ndjson
  evt export 'order-*' --from @2026-11-01 --to @2026-12-01 > nov-orders.ndjson
  evt export order-42 --from 2 --type Shipped
  evt export | evt import --dir /backup/evt`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := newUnionFilter(args, o.Types)
			if err != nil {
				return err
			}
			return runExport(cmd.Context(), g, o, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.From, "from", "start", "first event: a cursor")
	fl.StringVar(&o.To, "to", "end", "last event (inclusive): a cursor")
	fl.StringArrayVar(&o.Types, "type", nil, "only events of this type (repeatable)")
	return cmd
}

func runExport(ctx context.Context, g *globalOptions, o *exportOptions, f eventFilter) error {
	if g.Output != "" && g.Output != output.FormatJSON || g.JQ != "" {
		return usageErrorf("export writes NDJSON envelopes only (-o json); for other formats and --jq use evt replay")
	}
	from, to, err := parseRange(o.From, o.To)
	if err != nil {
		return err
	}
	s, r, err := openRange(g, f, to)
	if err != nil {
		return err
	}
	defer s.Close()
	first, _, err := s.Bounds()
	if err != nil {
		return err
	}
	p, err := output.NewPrinter(g.IO.Out, output.FormatJSON, false)
	if err != nil {
		return err
	}
	bar := newCountProgress(g.IO, "export", "events").besideOutput()
	n := 0
	err = r.readFrom(from, func(rec *codec.Record) error {
		if n++; n%(1<<16) == 0 {
			bar.update(int64(rec.Position-first), int64(r.to-first+1))
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return p.Record(rec)
	})
	bar.done()
	if ferr := p.Flush(); err == nil {
		err = ferr
	}
	return err
}

type importOptions struct {
	Quiet bool
}

func newImportCmd(g *globalOptions) *cobra.Command {
	o := &importOptions{}
	cmd := &cobra.Command{
		Use:   "import [FILE|-]",
		Short: "Append exported events, keeping their ids and times",
		Long: `Append the events of an evt export (FILE, or stdin when FILE is - or
absent), keeping each event's id and time. Every line must be an envelope
with "stream", "type", "id" and "time" ("data" defaults to {}; "position"
and "version" are ignored: the store numbers events as it appends them).

Importing is idempotent: an event whose id its stream already holds is
skipped, so importing the same file twice adds nothing. A summary goes to
stderr ("imported N events, skipped M already in the store"); -o json
prints it on stdout as {"imported","skipped"}, and -q prints nothing.

One import is one atomic batch: a bad line fails it, naming the line, and
nothing is written. Times never decrease along the log, so an event older
than the store's newest event is stored at that newest time; into an empty
store, every time is kept exactly. The import is written as it is read,
so a million events need little memory; input from a pipe is first copied
to a temporary file in the store directory, so that the store's append
lock is held only while that file is written to the log. A progress bar
goes to stderr when stderr is a terminal.`,
		Example: `  evt import backup.ndjson
  evt import < backup.ndjson
  evt export 'order-*' | evt import --dir /backup/evt
  evt import backup.ndjson -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImport(cmd.Context(), g, o, optionalArg(args))
		},
	}
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", false, "print no summary")
	return cmd
}

func runImport(ctx context.Context, g *globalOptions, o *importOptions, path string) error {
	p, err := g.printer()
	if err != nil {
		return err
	}
	// Before any input is read: the store's schemas may need evt-schema.
	val, s, err := g.appendValidator()
	if err != nil {
		return err
	}
	if s != nil {
		defer s.Close()
	}
	in := g.IO.In
	if path == "" || path == "-" {
		if g.IO.IsStdinTTY() {
			return usageErrorf("nothing to import: give FILE, or pipe an export to stdin")
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	// A retention archive or a gzipped export is read
	// decompressed, told apart by its first bytes. A plain regular file
	// stays the file it was, which importFrom reads in place.
	if !plainRegular(in) {
		dec, _, closeDec, err := archive.Decompress(in)
		if err != nil {
			return err
		}
		defer closeDec()
		in = dec
	}
	return importFrom(ctx, g, o, p, in, val, s)
}

// plainRegular reports whether in is a regular file whose content from
// its current offset does not start with the magic bytes of a
// compression archive.Decompress reads.
func plainRegular(in io.Reader) bool {
	f, ok := in.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	at, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false
	}
	var b [4]byte
	n, _ := f.ReadAt(b[:], at)
	return !archive.IsCompressed(b[:n])
}

// importFrom appends the envelopes read from in as one batch, written to
// the log as it is parsed (see appendStreaming). Anything but a regular
// file is first copied to an unlinked temporary file in the store
// directory: the append lock is held from the first parsed block to the
// commit, and a slow pipe must not hold it. ctx stops the import, with
// nothing written, until its commit point. val checks the events' data
// (nil: the store has no schema); s is the store if the caller opened it.
func importFrom(ctx context.Context, g *globalOptions, o *importOptions, p *output.Printer, in io.Reader, val SchemaValidator, s log.Store) error {
	if g.remote != "" {
		return importChunked(g, o, p, in, val, s)
	}
	if s == nil {
		var err error
		if s, err = g.openStore(true); err != nil {
			return err
		}
		defer s.Close()
	}
	f, regular := in.(*os.File)
	if regular {
		st, err := f.Stat()
		regular = err == nil && st.Mode().IsRegular()
	}
	if !regular {
		dir := os.TempDir()
		if d, ok := s.(log.Directory); ok {
			dir = d.Dir() // the same file system: no copy to a small /tmp
		}
		spool, err := spoolInput(ctx, g.IO, dir, in)
		if err != nil {
			return err
		}
		defer spool.Close()
		f = spool
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	offset, err := f.Seek(0, io.SeekCurrent) // a file on stdin may be read from its middle
	if err != nil {
		return err
	}
	meter := &progressReader{r: f, bar: newProgress(g.IO, "import"), total: st.Size() - offset}
	_, counts, err := appendStreaming(ctx, s, meter, st.Size()-offset, envelopeParser(nil, true, val), nil, log.Expectation{}, nil, false, true)
	meter.stop()
	if err != nil && !errors.Is(err, errNoEvents) {
		return err
	}
	autoCompact(g, s)
	return printImported(g, o, p, counts.events-counts.duplicates, counts.duplicates)
}

// importChunk is how many events a nats store's import appends at once:
// the server's default atomic batch limit.
const importChunk = 1000

// importChunked imports into a store whose appends are atomic only up to
// a limit (a nats store, CLI.md "Stores"): the whole input is parsed and
// validated first (a bad line writes nothing), then appended in atomic
// chunks. An import stopped midway leaves a prefix; running it again is
// exact, as it keeps the events' ids.
func importChunked(g *globalOptions, o *importOptions, p *output.Printer, in io.Reader, val SchemaValidator, s log.Store) error {
	var b log.Batch
	if err := parseLines(in, func(sub *log.Batch, _ int) error { b.Join(sub); return nil }, envelopeParser(nil, true, val)); err != nil {
		return err
	}
	if s == nil {
		var err error
		if s, err = g.openStore(true); err != nil {
			return err
		}
		defer s.Close()
	}
	var imported, skipped int
	for i := 0; i < b.Len(); i += importChunk {
		res, err := s.Append(context.Background(), b.Slice(i, min(i+importChunk, b.Len())))
		if err != nil {
			if i > 0 {
				return fmt.Errorf("%w (the first %d events are imported; importing the same input again adds only the rest)", err, i)
			}
			return err
		}
		for _, r := range res {
			if r.Duplicate {
				skipped++
			} else {
				imported++
			}
		}
	}
	return printImported(g, o, p, imported, skipped)
}

// printImported says how many events an import appended and skipped.
func printImported(g *globalOptions, o *importOptions, p *output.Printer, imported, skipped int) error {
	if o.Quiet {
		return nil
	}
	if p.Format() != output.FormatAuto || g.JQ != "" {
		if err := p.Row([]output.Field{{Key: "imported", Value: imported}, {Key: "skipped", Value: skipped}}); err != nil {
			return err
		}
		return p.Flush()
	}
	_, err := fmt.Fprintf(g.IO.ErrOut, "imported %d events, skipped %d already in the store (same stream and id)\n", imported, skipped)
	return err
}

// spoolInput copies in to a temporary file in dir and returns it, read
// from its start. The file is unlinked at once, so it leaves nothing
// behind however the process ends. A ctx done ends the copy, even one
// waiting for a pipe that says nothing (the reading goroutine is left to
// the process's exit).
func spoolInput(ctx context.Context, ios *IOStreams, dir string, in io.Reader) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".import-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	meter := &progressReader{r: in, bar: newProgress(ios, "import: reading")}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(f, contextReader{ctx, meter})
		copied <- err
	}()
	select {
	case err = <-copied:
	case <-ctx.Done():
		err = ctx.Err()
	}
	meter.stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("copy the input to %s: %w", dir, err)
	}
	return f, nil
}

// contextReader reads r until ctx is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// progressReader moves a bar as r is read: a fraction of total, or the
// bytes read so far when total is unknown (0). parseLines reads from a
// goroutine of its own, which may still be reading when the import
// fails, so stop ends the drawing for good.
type progressReader struct {
	r     io.Reader
	bar   *progress
	total int64

	mu      sync.Mutex // guards the fields below
	read    int64
	stopped bool
}

func (m *progressReader) Read(b []byte) (int, error) {
	n, err := m.r.Read(b)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.read += int64(n)
	if !m.stopped {
		m.bar.update(m.read, m.total)
	}
	return n, err
}

func (m *progressReader) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	m.bar.done()
}

// restoredTime is the time an imported event keeps: the "time" of its
// envelope. Import requires it and the id, which make a second import of
// the same events add nothing.
func restoredTime(env *codec.Envelope) (int64, error) {
	if env.ID == "" {
		return 0, errors.New(`missing field "id" (import keeps each event's id; new events go through evt append)`)
	}
	raw := env.Time
	if raw == nil {
		return 0, errors.New(`missing field "time" (import keeps each event's time; new events go through evt append)`)
	}
	if len(raw) < 2 || raw[0] != '"' {
		return 0, fmt.Errorf(`field "time" must be an RFC 3339 string, not %s`, clipText(string(raw)))
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw[1:len(raw)-1]))
	if err != nil || t.Year() < 1970 || t.Year() > 2261 {
		return 0, fmt.Errorf(`invalid time %s: want RFC 3339 between 1970 and 2261, as evt prints it`, clipText(string(raw)))
	}
	return t.UnixNano(), nil
}
