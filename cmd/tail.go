package cmd

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

type tailOptions struct {
	Lines      uint64
	From       string
	Follow     bool
	Poll       bool
	CursorFile string
	Count      uint64
	Timeout    time.Duration
	Types      []string
	Group      string
}

func newTailCmd(g *globalOptions) *cobra.Command {
	o := &tailOptions{}
	cmd := &cobra.Command{
		Use:   "tail [SELECTION...]",
		Short: "Print the last events, or everything from a cursor; -f follows",
		Long: `Print the last N events of a selection (default 10), or every event from
a cursor, then exit; with -f keep printing new events as any process appends
them, until interrupted, --count events were printed, or --timeout passed
without one. Each event is flushed as it is printed; with -f, the events of
one wake-up are written out together as soon as tail has read them.

SELECTION is a stream, a glob (account-*, *) or nothing for every stream;
several SELECTIONs are their union, each event printed once, in position
order (the read of a decision for append --fail-if-match). --type
(repeatable) keeps only those event types. A single stream that does not
exist exits 4; with -f, evt waits for it to appear. In a union, a stream
that does not exist has no events.

CURSOR: start, end (or now), a position, +N (N events after the start of
the selection), -N (N before the end), or @TIME: @2026-11-25T10:00:00Z,
@2026-11-25, @1764064800, @-10m, @-2d.

--cursor-file FILE resumes after the position saved in FILE and saves the
position of the last event printed (atomically and durably: at most a
tenth of a second after it was printed, and when tail ends, also on ^C),
so a script run again continues exactly where the last run stopped; after
a kill -9 or a power loss it prints at most that last tenth of a second
again, and never skips an event. Without a saved position it starts at
--from, or at the start of the log.

tail -f on a store that does not exist yet waits for it; end and the last
N then mean the empty log tail started with: every event of the store is
new to it.`,
		Example: `  evt tail                       # the last 10 events of the store
  evt tail account-7 -n 3
  evt tail 'account-*' --from @-1h --type Deposited
  evt tail course-7 student-3 --from start   # both streams, in position order
  evt tail -f --from end --count 1 order-42  # wait for order-42's next event
  evt tail --cursor-file seen.pos | ./process-events`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("lines") && cmd.Flags().Changed("from") && g.Source("lines") == sourceFlag && g.Source("from") == sourceFlag {
				return usageErrorf("-n and --from exclude each other")
			}
			f, err := newUnionFilter(args, o.Types)
			if err != nil {
				return err
			}
			if o.Group != "" && len(args) == 0 && len(o.Types) == 0 {
				f.fromGroup = true // the group's own selection, resolved once the store is open
			}
			return runTail(cmd.Context(), g, o, f)
		},
	}
	fl := cmd.Flags()
	fl.Uint64VarP(&o.Lines, "lines", "n", 10, "print the last N events")
	fl.StringVar(&o.From, "from", "", "print everything from this cursor")
	fl.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new events as they are appended")
	fl.BoolVar(&o.Poll, "poll", false, "follow by polling the store (once a second) instead of watching it")
	fl.StringVar(&o.CursorFile, "cursor-file", "", "resume after the position saved in FILE; save each printed position there")
	fl.Uint64Var(&o.Count, "count", 0, "stop after printing N events")
	durationVar(fl, &o.Timeout, "timeout", 0, false, "with -f, stop when no event arrived for this long (0: wait forever)")
	fl.StringArrayVar(&o.Types, "type", nil, "only events of this type (repeatable)")
	fl.StringVar(&o.Group, "group", "", "with --from stored: the consumer group whose committed position to start at")
	return cmd
}

func runTail(ctx context.Context, g *globalOptions, o *tailOptions, f eventFilter) error {
	var from codec.Cursor
	var err error
	if o.From != "" {
		if from, err = codec.ParseCursor(o.From, time.Now()); err != nil {
			return usageErrorf("--from: %w", err)
		}
	}
	p, err := g.eventPrinter()
	if err != nil {
		return err
	}
	var cf *cursorFile
	resume := uint64(0)
	if o.CursorFile != "" {
		cf = &cursorFile{path: o.CursorFile}
		if resume, err = cf.load(); err != nil {
			return err
		}
		if err := cf.check(); err != nil {
			return err
		}
	}
	s, err := g.openStore(false)
	waited := false // the store did not exist when tail started
	if err != nil {
		if errors.Is(err, log.ErrNoStore) && o.Follow {
			// Following a store that does not exist yet: wait for it.
			if s, err = waitForStore(ctx, g, o.Timeout); err != nil || s == nil {
				return err // nil, nil: --timeout passed first
			}
			waited = true
		} else {
			return err
		}
	}
	defer s.Close()

	if o.Group != "" && from.Kind != codec.CursorStored {
		return usageErrorf("--group goes with --from stored")
	}
	if from.Kind == codec.CursorStored {
		if o.Group == "" {
			return usageErrorf("--from stored needs --group NAME")
		}
		if from, f, err = storedCursor(ctx, s, o.Group, f); err != nil {
			return err
		}
	}
	r := &eventReader{s: s, f: f, ios: g.IO}
	printed := uint64(0)
	// A follower flushes once the read has caught up (q.CaughtUp) rather
	// than after every event: the events of one commit reach the pipe in
	// one write, which is most of a wake-up's cost with many followers.
	// A cursor file is saved only for events already written out, so with
	// one every event is flushed as it is printed.
	flushEach := !o.Follow || cf != nil
	print := func(rec *codec.Record) error {
		if err := p.Record(rec); err != nil {
			return err
		}
		if flushEach {
			if err := p.Flushed(); err != nil {
				return err
			}
		}
		if cf != nil {
			if err := cf.save(rec.Position); err != nil {
				return err
			}
		}
		printed++
		if o.Count > 0 && printed >= o.Count {
			return errStop
		}
		return nil
	}
	q := log.Query{Follow: o.Follow, Poll: o.Poll, Idle: o.Timeout}
	if !flushEach {
		q.CaughtUp = p.Flushed
	}
	switch {
	case resume > 0:
		q.From = codec.Cursor{Kind: codec.CursorPosition, N: resume + 1}
	case o.From != "":
		q.From = from
	case cf != nil:
		q.From = codec.Cursor{Kind: codec.CursorStart}
	default:
		q.From = codec.Cursor{Kind: codec.CursorBeforeEnd, N: o.Lines}
	}
	if waited && (q.From.Kind == codec.CursorEnd || q.From.Kind == codec.CursorBeforeEnd) {
		// The end, and the last N events, were those of a log with no
		// events when tail started: every event of the store that has
		// appeared since was appended after that, and is new. (Resolved
		// now, they would skip what the first writers appended while
		// the store was being waited for.)
		q.From = codec.Cursor{Kind: codec.CursorStart}
	}
	err = r.read(ctx, q, print)
	if ferr := p.Flush(); err == nil {
		err = ferr
	}
	if cf != nil {
		// Also after an interrupt: the events printed were seen.
		if ferr := cf.flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// waitForStore polls until the store exists (tail -f before the first
// append), ctx ends, or idle passes (nil, nil; 0 waits forever).
func waitForStore(ctx context.Context, g *globalOptions, idle time.Duration) (log.Store, error) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var deadline <-chan time.Time
	if idle > 0 {
		timer := time.NewTimer(idle)
		defer timer.Stop()
		deadline = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, nil
		case <-t.C:
		}
		s, err := g.openStore(false)
		if err == nil || !errors.Is(err, log.ErrNoStore) {
			return s, err
		}
	}
}

// storedCursor turns "stored" into the group's committed position, and a
// selection left out into the group's own.
func storedCursor(ctx context.Context, s log.Store, name string, f eventFilter) (codec.Cursor, eventFilter, error) {
	grp, err := s.OpenGroup(ctx, name)
	if err != nil {
		return codec.Cursor{}, f, err
	}
	defer grp.Close()
	committed, err := grp.Position(ctx)
	if err != nil {
		return codec.Cursor{}, f, err
	}
	if f.fromGroup {
		cfg := grp.Config()
		if f, err = newEventFilter(selectionPattern(cfg.Selection), cfg.Types); err != nil {
			return codec.Cursor{}, f, err
		}
	}
	return codec.Cursor{Kind: codec.CursorPosition, N: max(committed, 1)}, f, nil
}
