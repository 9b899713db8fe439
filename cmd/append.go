package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

type appendOptions struct {
	Meta   string
	ID     string
	Expect string
	Quiet  bool
	// FailIfMatch and After make the append conditional across streams
	// (log.Condition).
	FailIfMatch []string
	After       string
}

func newAppendCmd(g *globalOptions) *cobra.Command {
	o := &appendOptions{}
	cmd := &cobra.Command{
		Use:   "append [STREAM TYPE [DATA]]",
		Short: "Append events to a stream, atomically",
		Long: `Append events. One call is one atomic batch: every event in it is stored,
or none is, with one fsync.

  evt append STREAM TYPE [DATA]         one event; DATA is JSON text, @FILE
                                        or - (stdin); without DATA, {}
  evt append STREAM TYPE < data.ndjson  one event per line, all of STREAM
                                        and TYPE
  evt append < events.ndjson            one envelope per line:
                                        {"stream","type","data",
                                         "metadata","id"}

Without DATA, piped stdin (a pipe or a file, not a terminal or /dev/null)
is read as data lines. Blank lines are skipped. A bad line fails the whole
batch, naming the line, and nothing is written.

An event whose id its stream already holds is not appended again: the
call reports the original event (an idempotent retry).

--expect checks the stream's version before the batch: any (no check),
none (the stream must not exist), exists, or a version number. On a
mismatch evt exits 3 and writes nothing. With envelopes it applies to
every stream of the batch.

--fail-if-match QUERY --after POSITION appends only if no event that a
QUERY matches was appended after POSITION, checked atomically with the
append; otherwise evt exits 3 and writes nothing. QUERY is SELECTION or
SELECTION:TYPE[,TYPE...] (repeatable: any of them); the last ':' starts the
types, so 'a:b:' is stream a:b of any type. A script reads what its
decision depends on (evt tail Q1 Q2 --from start), notes the last position
it saw (the store's last position when it saw none), decides, and appends
with that position; on exit 3 it reads again and decides again.`,
		Example: `  evt append account-7 Deposited '{"amount":50}'
  evt append account-7 Withdrawn '{"amount":20}' --expect 1
  evt append order-1 Placed @order.json --id order-1-placed
  jq -c '.[]' deposits.json | evt append account-7 Deposited
  evt append < events.ndjson
  evt append course-7 Enrolled '{"student":"student-3"}' \
      --fail-if-match 'course-7:Enrolled,Left' \
      --fail-if-match 'student-3' --after 41`,
		Args: cobra.MaximumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return usageErrorf("append needs STREAM and TYPE (or no arguments, with envelopes on stdin)")
			}
			return runAppend(cmd.Context(), g, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Meta, "meta", "", "metadata for every event, as JSON text")
	f.StringVar(&o.ID, "id", "", "event id (default: a new ULID); a retry with the same id appends nothing")
	f.StringVar(&o.Expect, "expect", "any", "expected stream version: any, none, exists or N")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print nothing on success")
	f.StringArrayVar(&o.FailIfMatch, "fail-if-match", nil, "append only if no event of QUERY (SELECTION[:TYPE,...]) came after --after (repeatable)")
	f.StringVar(&o.After, "after", "", "with --fail-if-match: the last position the decision saw")
	_ = cmd.RegisterFlagCompletionFunc("expect", cobra.FixedCompletions([]string{"any", "none", "exists"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// runAppend appends one batch. ctx cancels it up to its commit point; evt
// gives an append a context no signal cancels (see interruptContext).
func runAppend(ctx context.Context, g *globalOptions, o *appendOptions, args []string) error {
	expect, err := log.ParseExpectation(o.Expect)
	if err != nil {
		return usageErrorf("--expect: %w", err)
	}
	cond, err := appendCondition(o)
	if err != nil {
		return err
	}
	var meta []byte
	if o.Meta != "" {
		if meta, err = codec.AppendCompact(nil, []byte(o.Meta)); err != nil {
			return usageErrorf("--meta: %w", err)
		}
		if string(meta) == "{}" || string(meta) == "null" {
			meta = nil
		}
	}
	if o.ID != "" {
		if err := codec.ValidateID(o.ID); err != nil {
			return usageErrorf("--id: %w", err)
		}
	}
	if len(args) >= 2 {
		// Arguments, not input: a bad name is a usage error (exit 2).
		if err := codec.ValidateStream(args[0]); err != nil {
			return usageErrorf("%w", err)
		}
		if err := codec.ValidateType(args[1]); err != nil {
			return usageErrorf("%w", err)
		}
	}
	p, err := g.eventPrinter()
	if err != nil {
		return err
	}
	// Before any input is read: the store's schemas may need evt-schema.
	val, s, err := g.appendValidator()
	if err != nil {
		return err
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()

	var b log.Batch
	var lines lineParser // reads stdin, in the forms that take it
	switch {
	case len(args) == 3 || len(args) == 2 && !stdinHasData(g.IO):
		data := []byte("{}")
		if len(args) == 3 {
			if data, err = readDataArg(g.IO, args[2]); err != nil {
				return err
			}
		}
		if err := validateData(val, args[1], data); err != nil {
			return err
		}
		if err := b.Add(args[0], args[1], o.ID, data, meta); err != nil {
			return err
		}
	case len(args) == 2:
		lines = dataLineParser(args[0], args[1], o.ID, meta, val)
	default:
		if g.IO.IsStdinTTY() {
			return usageErrorf("nothing to append: give STREAM TYPE [DATA], or pipe NDJSON envelopes to stdin")
		}
		if o.ID != "" {
			return usageErrorf("--id goes with STREAM TYPE; envelopes carry their own \"id\"")
		}
		lines = envelopeParser(meta, false, val)
	}
	// Expectations: on STREAM, or on every stream of the envelopes.
	var expectOn map[string]log.Expectation
	expectAll := log.Expectation{}
	if expect.Kind != log.ExpectAny {
		if len(args) >= 2 {
			expectOn = map[string]log.Expectation{args[0]: expect}
		} else {
			expectAll = expect
		}
	}
	doomed := expect.Kind == log.ExpectExists || expect.Kind == log.ExpectVersion
	// Only a doomed expectation asks whether the store exists: the stat
	// is saved for every other append.
	missing := doomed && !g.storeExists()

	var results []log.Result
	open := func() error {
		if s != nil {
			return nil
		}
		if s, err = g.openStore(true); err != nil {
			return err
		}
		return nil
	}
	if lines != nil && stdinIsFile(g.IO) && !missing {
		// A file on stdin: write the batch as it is parsed (see
		// log.BatchWriter), overlapping parsing with the disk.
		if err := open(); err != nil {
			return err
		}
		if results, _, err = appendStreaming(ctx, s, g.IO.In, inputLeft(g.IO.In), lines, expectOn, expectAll, cond, o.ID != "", o.Quiet); err != nil {
			return err
		}
	} else {
		if lines != nil {
			if err := parseLines(g.IO.In, func(sub *log.Batch, _ int) error { b.Join(sub); return nil }, lines); err != nil {
				return err
			}
			if o.ID != "" && b.Len() > 1 {
				return usageErrorf("--id names one event, stdin has more than one line")
			}
		}
		if b.Len() == 0 {
			return errNoEvents
		}
		for name, e := range expectOn {
			b.Expect(name, e)
		}
		if expectAll.Kind != log.ExpectAny {
			for _, name := range b.Streams() {
				b.Expect(name, expectAll)
			}
		}
		if cond != nil {
			b.FailIfMatch(*cond)
		}
		// Every stream of a store that does not exist is at version 0:
		// fail a doomed expectation without creating the store.
		if missing {
			return fmt.Errorf("%w: stream %s is at version 0, expected %s", log.ErrConflict, b.Streams()[0], expect)
		}
		if err := open(); err != nil {
			return err
		}
		if results, err = s.Append(ctx, &b); err != nil {
			return err
		}
	}
	autoCompact(g, s)
	if o.Quiet {
		return nil
	}
	dups := 0
	line := make([]byte, 0, 64)
	for _, r := range results {
		if r.Duplicate {
			dups++
		}
		if p.Format() == output.FormatAuto && g.JQ == "" {
			line = strconv.AppendUint(line[:0], r.Position, 10)
			line = append(line, ' ')
			line = append(line, r.Stream...)
			line = append(line, '@')
			line = strconv.AppendUint(line, r.Version, 10)
			line = append(line, '\n')
			if _, err := g.IO.Out.Write(line); err != nil {
				return err
			}
			continue
		}
		// Print what was stored (for a duplicate: the original event).
		ev, err := eventAt(s, r.Position)
		if err != nil {
			return err
		}
		if err := p.Event(&ev); err != nil {
			return err
		}
	}
	if dups > 0 {
		fmt.Fprintf(g.IO.ErrOut, "evt: %d of %d events were already in their stream (same id) and were not appended again\n", dups, len(results))
	}
	return p.Flush()
}

// appendCondition reads --fail-if-match and --after: nil when neither is
// given, a usage error when one comes without the other.
func appendCondition(o *appendOptions) (*log.Condition, error) {
	if len(o.FailIfMatch) == 0 && o.After == "" {
		return nil, nil
	}
	if len(o.FailIfMatch) == 0 {
		return nil, usageErrorf("--after goes with --fail-if-match")
	}
	if o.After == "" {
		return nil, usageErrorf("--fail-if-match needs --after POSITION: the last position the decision saw")
	}
	after, err := strconv.ParseUint(o.After, 10, 64)
	if err != nil {
		return nil, usageErrorf("--after: invalid position %q (want a number, 0 for an empty store)", o.After)
	}
	cond := &log.Condition{After: after}
	for _, arg := range o.FailIfMatch {
		q, err := log.ParseConditionQuery(arg)
		if err != nil {
			return nil, usageErrorf("--fail-if-match: %w", err)
		}
		cond.Queries = append(cond.Queries, q)
	}
	return cond, nil
}

// stdinHasData reports whether stdin is a pipe or a file to read data
// lines from: not a terminal, and not a character device such as
// /dev/null (cron, CI and `< /dev/null` give no data).
func stdinHasData(ios *IOStreams) bool {
	if ios.IsStdinTTY() {
		return false
	}
	f, ok := ios.In.(*os.File)
	if !ok {
		return true // a test's buffer
	}
	st, err := f.Stat()
	if err != nil {
		return false
	}
	return st.Mode()&os.ModeCharDevice == 0
}

// readDataArg reads DATA: JSON text, @FILE, or - for all of stdin.
func readDataArg(ios *IOStreams, arg string) ([]byte, error) {
	src := []byte(arg)
	from := "DATA"
	switch {
	case arg == "-":
		b, err := io.ReadAll(io.LimitReader(ios.In, codec.MaxRecordSize+1))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		src, from = b, "stdin"
	case len(arg) > 1 && arg[0] == '@':
		b, err := readFileLimited(arg[1:], codec.MaxRecordSize+1)
		if err != nil {
			return nil, err
		}
		src, from = b, arg[1:]
	}
	if len(src) > codec.MaxRecordSize {
		return nil, fmt.Errorf("%s: %w: more than %d bytes (the record limit is 1 MiB)", from, log.ErrTooLarge, codec.MaxRecordSize)
	}
	data, err := codec.AppendCompact(nil, src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return data, nil
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// lineParser adds the event of one input line to a batch; buf is scratch
// space it may grow and returns.
type lineParser func(sub *log.Batch, line, buf []byte) ([]byte, error)

// dataLineParser reads each line as the data of an event of stream and
// typ, checked by val (nil: no schema).
func dataLineParser(stream, typ, id string, meta []byte, val SchemaValidator) lineParser {
	return func(sub *log.Batch, line, buf []byte) ([]byte, error) {
		buf, err := codec.AppendCompact(buf[:0], line)
		if err != nil {
			return buf, err
		}
		if err := validateData(val, typ, buf); err != nil {
			return buf, err
		}
		return buf, sub.Add(stream, typ, id, buf, meta)
	}
}

// envelopeParser reads each line as an envelope. With restore (evt
// import) the line must carry the event's id and time, and the event
// keeps both (see restoredTime). val checks the data (nil: no schema).
func envelopeParser(meta []byte, restore bool, val SchemaValidator) lineParser {
	return func(sub *log.Batch, line, buf []byte) ([]byte, error) {
		var env codec.Envelope
		buf, err := codec.ParseEnvelope(line, &env, buf[:0])
		if err != nil {
			return buf, err
		}
		data := env.Data
		if !env.HasData {
			data = []byte("{}")
		}
		if err := validateData(val, env.Type, data); err != nil {
			return buf, err
		}
		m := env.Metadata
		if m == nil {
			m = meta
		}
		if !restore {
			return buf, sub.Add(env.Stream, env.Type, env.ID, data, m)
		}
		t, err := restoredTime(&env)
		if err != nil {
			return buf, err
		}
		return buf, sub.AddAt(env.Stream, env.Type, env.ID, data, m, t)
	}
}

// validateData checks the data of an event of typ against its schema,
// if val (the store's schemas) is not nil.
func validateData(val SchemaValidator, typ string, data []byte) error {
	if val == nil {
		return nil
	}
	return val.Validate(typ, data)
}

// errNoEvents is the error of an append whose input held no event.
var errNoEvents = errors.New("no events on stdin")

// appendCounts says how many events an append read, and how many of them
// were not written because their stream already held their id.
type appendCounts struct{ events, duplicates int }

// appendStreaming parses stdin and appends it as one batch that is written
// while it is parsed; the lock is taken when the first block is ready.
// ctx stops it, and drops the batch, up to its commit point.
// ctx stops it, and drops the batch, up to its commit point. size, if
// known, is the input's length, for the store's seal check
// (log.AppendOptions.SizeHint).
func appendStreaming(ctx context.Context, s log.Store, in io.Reader, size int64, lines lineParser, expectOn map[string]log.Expectation, expectAll log.Expectation, cond *log.Condition, oneID, quiet bool) ([]log.Result, appendCounts, error) {
	bw, ok := s.(log.BatchWriter)
	if !ok {
		return appendWhole(ctx, s, in, lines, expectOn, expectAll, cond, oneID)
	}
	var a log.Appender
	n := 0
	err := parseLines(in, func(sub *log.Batch, read int) error {
		if n += sub.Len(); oneID && n > 1 {
			return usageErrorf("--id names one event, stdin has more than one line")
		}
		if a == nil {
			// -q prints nothing: keep no result per event.
			opts := log.AppendOptions{NoResults: quiet, Condition: cond}
			if size > 0 && read > 0 {
				// Records take more or less than their lines: scale the
				// input's size by what the first lines became.
				opts.SizeHint = int64(float64(size) * float64(sub.Size()) / float64(read))
			}
			var err error
			if a, err = bw.BeginAppend(ctx, expectOn, expectAll, opts); err != nil {
				return err
			}
		}
		return a.Add(sub)
	}, lines)
	if err != nil {
		if a != nil {
			a.Abort()
		}
		return nil, appendCounts{}, err
	}
	if a == nil || n == 0 {
		if a != nil {
			a.Abort()
		}
		return nil, appendCounts{}, errNoEvents
	}
	results, err := a.Commit()
	return results, appendCounts{events: n, duplicates: a.Duplicates()}, err
}

// appendWhole is appendStreaming for a store that takes a batch only
// whole: parse everything, then one Append.
func appendWhole(ctx context.Context, s log.Store, in io.Reader, lines lineParser, expectOn map[string]log.Expectation, expectAll log.Expectation, cond *log.Condition, oneID bool) ([]log.Result, appendCounts, error) {
	var b log.Batch
	if err := parseLines(in, func(sub *log.Batch, _ int) error { b.Join(sub); return nil }, lines); err != nil {
		return nil, appendCounts{}, err
	}
	if oneID && b.Len() > 1 {
		return nil, appendCounts{}, usageErrorf("--id names one event, stdin has more than one line")
	}
	if b.Len() == 0 {
		return nil, appendCounts{}, errNoEvents
	}
	for name, e := range expectOn {
		b.Expect(name, e)
	}
	if expectAll.Kind != log.ExpectAny {
		for _, name := range b.Streams() {
			b.Expect(name, expectAll)
		}
	}
	if cond != nil {
		b.FailIfMatch(*cond)
	}
	results, err := s.Append(ctx, &b)
	if err != nil {
		return nil, appendCounts{}, err
	}
	c := appendCounts{events: b.Len()}
	for _, r := range results {
		if r.Duplicate {
			c.duplicates++
		}
	}
	return results, c, nil
}

// inputLeft is how many bytes of the file in are left to read, or 0 when
// that is not known.
func inputLeft(in io.Reader) int64 {
	f, ok := in.(*os.File)
	if !ok {
		return 0
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0
	}
	return max(0, st.Size()-off)
}

// stdinIsFile reports whether stdin is a regular file: read at disk speed,
// so holding the append lock while it is parsed delays no one for long.
func stdinIsFile(ios *IOStreams) bool {
	f, ok := ios.In.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode().IsRegular()
}

// lineBlock is a run of input lines handed to a parsing worker.
type lineBlock struct {
	seq   int
	text  []byte // the lines, back to back
	ends  []int  // end offset of each line in text
	nums  []int  // the line number of each line
	read  int    // bytes of input the lines took, newlines included
	err   error  // a read error after these lines (line too long, I/O)
	batch log.Batch
}

// parseLines parses one event per line of in, on every core: a reader
// cuts the input into blocks of lines, workers parse each block into a
// batch of its own, and sink gets the batches in input order. The error is
// that of the first bad line, named by its number, or sink's; sink gets
// nothing after it, and with each batch the bytes of input its lines
// took. Parsing is most of a bulk import's CPU time.
func parseLines(in io.Reader, sink func(sub *log.Batch, read int) error, add lineParser) error {
	const blockLines, blockBytes = 4096, 1 << 20
	workers := max(1, min(runtime.GOMAXPROCS(0), 4))
	todo := make(chan *lineBlock, workers)
	done := make(chan *lineBlock, workers)
	quit := make(chan struct{})
	defer close(quit)

	// Text buffers go round: reader → worker → back, so a big input
	// neither allocates nor grows a buffer per block.
	free := make(chan []byte, 2*workers)
	newBlock := func(seq int) *lineBlock {
		blk := &lineBlock{seq: seq, ends: make([]int, 0, blockLines), nums: make([]int, 0, blockLines)}
		select {
		case blk.text = <-free:
		default:
			blk.text = make([]byte, 0, blockBytes+64<<10)
		}
		return blk
	}
	go func() { // the reader
		defer close(todo)
		lr := codec.NewLineReader(in, codec.MaxRecordSize)
		blk := newBlock(0)
		send := func() bool {
			select {
			case todo <- blk:
				blk = newBlock(blk.seq + 1)
				return true
			case <-quit:
				return false
			}
		}
		for {
			line, n, err := lr.Next()
			if err != nil {
				if err != io.EOF {
					blk.err = err
				}
				send()
				return
			}
			blk.text = append(blk.text, line...)
			blk.read += len(line) + 1
			blk.ends = append(blk.ends, len(blk.text))
			blk.nums = append(blk.nums, n)
			if len(blk.ends) >= blockLines || len(blk.text) >= blockBytes {
				if !send() {
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for blk := range todo {
				start := 0
				for i, end := range blk.ends {
					var err error
					if buf, err = add(&blk.batch, blk.text[start:end], buf); err != nil {
						blk.err = fmt.Errorf("line %d: %w", blk.nums[i], err)
						break
					}
					start = end
				}
				select {
				case free <- blk.text[:0]:
				default:
				}
				blk.text = nil
				select {
				case done <- blk:
				case <-quit:
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	// Join in order; blocks finish out of order.
	pending := map[int]*lineBlock{}
	next := 0
	for blk := range done {
		pending[blk.seq] = blk
		for {
			blk, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if blk.batch.Len() > 0 {
				if err := sink(&blk.batch, blk.read); err != nil {
					return err
				}
			}
			if blk.err != nil {
				return blk.err
			}
		}
	}
	return nil
}

// eventAt reads the event at a position: a read of every stream from
// that position to it (one record's read on the local store).
func eventAt(s log.Store, pos uint64) (codec.Event, error) {
	for rec, err := range s.Read(context.Background(), log.Query{From: codec.Cursor{Kind: codec.CursorPosition, N: pos}, To: pos}) {
		if err != nil {
			return codec.Event{}, err
		}
		return rec.Event(), nil
	}
	return codec.Event{}, fmt.Errorf("%w: no event at position %d", log.ErrNotFound, pos)
}
