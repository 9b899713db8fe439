package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

type replayOptions struct {
	From      string
	To        string
	Exec      string
	KeepGoing bool
	Types     []string
}

func newReplayCmd(g *globalOptions) *cobra.Command {
	o := &replayOptions{}
	cmd := &cobra.Command{
		Use:   "replay [SELECTION...]",
		Short: "Stream every matching event in position order, then exit",
		Long: `Replay the events of a selection in position order, from --from (default
start) to --to (inclusive; default the end of the log when replay starts),
as NDJSON or in the -o format. Several selections read as their union:
each event once, in position order.

With --exec CMD, runs CMD (with sh -c) once per event instead of printing
it: the envelope on stdin, and EVT_POSITION, EVT_STREAM, EVT_VERSION and
EVT_TYPE in its environment. Replay stops at the first CMD that fails
(exit 1, naming the event) unless --keep-going, which runs every event and
exits 1 at the end if any failed.`,
		Example: `  evt replay > backup.ndjson
  evt replay 'account-*' --from @2026-11-01 --to @2026-12-01 --type Deposited
  evt replay course-7 student-3 --to 100
  evt replay order-42 --exec 'jq -c .data >> order-42.log'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := newUnionFilter(args, o.Types)
			if err != nil {
				return err
			}
			return runReplay(cmd.Context(), g, o, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.From, "from", "start", "first event: a cursor")
	fl.StringVar(&o.To, "to", "end", "last event (inclusive): a cursor")
	fl.StringVar(&o.Exec, "exec", "", "run this shell command once per event, the envelope on its stdin")
	fl.BoolVar(&o.KeepGoing, "keep-going", false, "with --exec, go on after a failed command")
	fl.StringArrayVar(&o.Types, "type", nil, "only events of this type (repeatable)")
	return cmd
}

func runReplay(ctx context.Context, g *globalOptions, o *replayOptions, f eventFilter) error {
	from, to, err := parseRange(o.From, o.To)
	if err != nil {
		return err
	}
	p, err := g.eventPrinter()
	if err != nil {
		return err
	}
	s, r, err := openRange(g, f, to)
	if err != nil {
		return err
	}
	defer s.Close()

	var handle func(*codec.Record) error
	failed, total := 0, 0
	if o.Exec == "" {
		handle = func(rec *codec.Record) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return p.Record(rec)
		}
	} else {
		var envelope []byte
		handle = func(rec *codec.Record) error {
			total++
			envelope = append(codec.AppendRecordJSON(envelope[:0], rec), '\n')
			err := runExec(ctx, g, o.Exec, rec, envelope)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			err = fmt.Errorf("--exec failed on position %d (%s@%d): %w", rec.Position, rec.Stream, rec.Version, err)
			if !o.KeepGoing {
				return err
			}
			failed++
			fmt.Fprintln(g.IO.ErrOut, errorLine(err))
			return nil
		}
	}
	err = r.readFrom(from, handle)
	if ferr := p.Flush(); err == nil {
		err = ferr
	}
	if err == nil && failed > 0 {
		err = fmt.Errorf("--exec failed on %d of %d events", failed, total)
	}
	return err
}

// parseRange reads the --from and --to cursors of replay and export.
func parseRange(fromText, toText string) (from, to codec.Cursor, err error) {
	now := time.Now()
	if from, err = codec.ParseCursor(fromText, now); err != nil {
		return from, to, usageErrorf("--from: %w", err)
	}
	if to, err = codec.ParseCursor(toText, now); err != nil {
		return from, to, usageErrorf("--to: %w", err)
	}
	return from, to, nil
}

// openRange opens the store for reading and a reader of f's events that
// stops after the --to cursor (inclusive); readFrom starts it at --from.
func openRange(g *globalOptions, f eventFilter, to codec.Cursor) (log.Store, *eventReader, error) {
	s, err := g.openStore(false)
	if err != nil {
		return nil, nil, err
	}
	r := &eventReader{s: s, f: f, ios: g.IO}
	if r.to, err = replayBound(r, to); err != nil {
		s.Close()
		return nil, nil, err
	}
	r.bounded = true
	return s, r, nil
}

// replayBound turns --to into the last position to replay (inclusive;
// 0 replays nothing). +N and -N count events of the selection, as --from
// does: the bound is the position of that event.
func replayBound(r *eventReader, to codec.Cursor) (uint64, error) {
	first, next, err := r.s.Bounds()
	if err != nil {
		return 0, err
	}
	last := next - 1
	switch to.Kind {
	case codec.CursorEnd:
		return last, nil
	case codec.CursorStart:
		return first, nil
	case codec.CursorPosition:
		return to.N, nil
	case codec.CursorTime:
		// Inclusive: every event at or before the instant.
		p, err := r.s.PositionAt(to.Time.Add(time.Nanosecond))
		if err != nil {
			return 0, err
		}
		return p - 1, nil
	case codec.CursorAfterHead, codec.CursorBeforeEnd:
		// Find the event the cursor names with a reader of its own.
		probe := &eventReader{s: r.s, f: r.f, ios: r.ios}
		var at uint64
		found := func(rec *codec.Record) error {
			at = rec.Position
			return errStop
		}
		if to.Kind == codec.CursorAfterHead {
			err = probe.readFrom(to, found)
		} else {
			// The first of the last N+1; with fewer, the bound lies before
			// them all and nothing is replayed.
			var n uint64
			err = probe.lastN(to.N+1, func(rec *codec.Record) error {
				if n == 0 {
					at = rec.Position
				}
				n++
				return nil
			})
			if n < to.N+1 {
				at = 0
			}
		}
		if err != nil {
			return 0, err
		}
		if at == 0 && to.Kind == codec.CursorAfterHead {
			return last, nil // fewer events than N: up to the end
		}
		return at, nil
	}
	return 0, usageErrorf("--to: %s is not a place in the log", to)
}

// runExec runs the --exec command for one event.
func runExec(ctx context.Context, g *globalOptions, command string, rec *codec.Record, envelope []byte) error {
	c := exec.CommandContext(ctx, "sh", "-c", command)
	c.Stdin = bytes.NewReader(envelope)
	c.Stdout = g.IO.Out
	c.Stderr = g.IO.ErrOut
	c.Env = append(os.Environ(),
		"EVT_POSITION="+strconv.FormatUint(rec.Position, 10),
		"EVT_STREAM="+string(rec.Stream),
		"EVT_VERSION="+strconv.FormatUint(rec.Version, 10),
		"EVT_TYPE="+string(rec.Type),
	)
	return c.Run()
}
