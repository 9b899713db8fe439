package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

type consumeOptions struct {
	Exec      string
	Batch     int
	Once      bool
	Count     uint64
	ManualAck bool
	Poll      bool
}

func newConsumeCmd(g *globalOptions) *cobra.Command {
	o := &consumeOptions{}
	cmd := &cobra.Command{
		Use:   "consume NAME",
		Short: "Consume a group's events, sharing the work with other members",
		Long: `Take events from consumer group NAME, at least once; any number of
processes can consume the same group, and each event goes to one of them
at a time.

Without --exec, events print as NDJSON and are acked once written;
--manual-ack leaves acking to "evt ack NAME POSITION...". With --exec CMD,
CMD runs (sh -c) once per event with the envelope on stdin and
EVT_POSITION, EVT_STREAM, EVT_VERSION, EVT_TYPE and EVT_DELIVERY (the
attempt, from 1) in its environment: exit 0 acks the event; a failure, a
crash or outliving the group's --ack-wait delivers it again (to any
member) after a backoff; after --max-deliver attempts it is parked with
its last error and the group moves on.

--once drains what can be taken now (waiting out retries) and exits;
--count N exits after N events; otherwise consume waits for new events.`,
		Example: `  evt consume billing --exec './bill.sh'
  evt consume audit --once > audit.ndjson
  evt consume mailer --manual-ack --batch 10`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Batch < 0 {
				return usageErrorf("--batch must be positive")
			}
			return runConsume(cmd.Context(), g, o, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Exec, "exec", "", "run this shell command per event; exit 0 acks")
	fl.IntVar(&o.Batch, "batch", 0, "events to take at a time (default 1000 printing, 1 with --exec)")
	fl.BoolVar(&o.Once, "once", false, "take what is there, then exit")
	fl.Uint64Var(&o.Count, "count", 0, "exit after N events")
	fl.BoolVar(&o.ManualAck, "manual-ack", false, "print events but leave acking to evt ack")
	fl.BoolVar(&o.Poll, "poll", false, "wait for events by polling instead of watching the store")
	return cmd
}

func runConsume(ctx context.Context, g *globalOptions, o *consumeOptions, name string) error {
	p, err := g.eventPrinter()
	if err != nil {
		return err
	}
	s, err := g.openStore(false)
	if err != nil {
		return err
	}
	defer s.Close()
	grp, err := s.OpenGroup(ctx, name)
	if err != nil {
		return err
	}
	defer grp.Close()
	cfg := grp.Config()
	batch := o.Batch
	if batch == 0 {
		batch = 1000
		if o.Exec != "" {
			batch = 1
		}
	}
	m, err := grp.Join(ctx, log.MemberOptions{ManualAck: o.ManualAck, Poll: o.Poll})
	if err != nil {
		return err
	}
	// Whatever this member still holds when it stops goes back at once,
	// not after the ack wait; but for --manual-ack leases, which wait for
	// evt ack.
	defer m.Close()

	var done uint64
	var envelope []byte
	var acks []uint64 // printed, to ack with the next lease
	var rp *reaper    // kills the running handler if this member dies
	defer func() {
		if len(acks) > 0 {
			if err := m.Ack(context.Background(), acks...); err != nil {
				fmt.Fprintln(g.IO.ErrOut, errorLine(fmt.Errorf("ack on the way out: %w (the events will be delivered again)", err)))
			}
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := batch
		if o.Count > 0 {
			n = int(min(uint64(n), o.Count-done))
		}
		ds, retryAt, err := m.Lease(ctx, n, !o.ManualAck, acks...)
		if err != nil {
			return err
		}
		acks = acks[:0]
		if len(ds) == 0 {
			if o.Once && retryAt.IsZero() {
				return p.Flush()
			}
			wctx, cancel := ctx, context.CancelFunc(func() {})
			if !retryAt.IsZero() {
				wctx, cancel = context.WithDeadline(ctx, retryAt)
			}
			err := m.Wait(wctx)
			cancel()
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		if o.Exec == "" {
			positions := make([]uint64, 0, len(ds))
			for i := range ds {
				if err := p.Event(&ds[i].Event); err != nil {
					return err
				}
				positions = append(positions, ds[i].Event.Position)
			}
			if err := p.Flushed(); err != nil {
				return err
			}
			if !o.ManualAck {
				acks = append(acks, positions...) // acked with the next lease, or on the way out
			}
			done += uint64(len(ds))
		} else {
			if rp == nil {
				if rp, err = startReaper(); err != nil {
					return err
				}
				defer rp.stop()
			}
			failed := map[string]bool{} // streams whose event failed in this batch
			for i := range ds {
				d := &ds[i]
				if failed[d.Event.Stream] && cfg.Ordering != "none" {
					// Its stream's earlier event goes round again first.
					if err := m.Return(ctx, d.Event.Position); err != nil {
						return err
					}
					continue
				}
				// A handler's deadline is its lease's: the first event's
				// lease was just taken; each later one is renewed first,
				// and one whose lease ran out while the events before it
				// ran (it may be another member's by now) is not started.
				deadline := d.Deadline
				if i > 0 {
					dl, ok, err := m.Renew(ctx, d.Event.Position)
					if err != nil {
						return err
					}
					if !ok {
						failed[d.Event.Stream] = true
						continue
					}
					deadline = dl
				}
				if !time.Now().Before(deadline) {
					failed[d.Event.Stream] = true
					continue // reclaimed by the next lease
				}
				envelope = append(codec.AppendEventJSON(envelope[:0], &d.Event), '\n')
				herr := runHandler(ctx, g, rp, o.Exec, d, envelope, deadline, cfg.AckWait)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if herr == nil {
					if err := m.Ack(ctx, d.Event.Position); err != nil {
						return err
					}
					done++
				} else {
					failed[d.Event.Stream] = true
					if err := m.Nack(ctx, d.Event.Position, herr.Error()); err != nil {
						return err
					}
				}
			}
		}
		if o.Count > 0 && done >= o.Count {
			return p.Flush() // the deferred ack follows
		}
	}
}

// runHandler runs the --exec command for one delivery, in its own process
// group (runGroup). Its error says how it failed, with the last line it
// wrote to stderr, for parked events. A handler that outlives its lease's
// deadline is killed with all it started (its event goes to another
// member anyway), and so is one whose member dies (the reaper), so two
// copies of a handler never run at once.
func runHandler(ctx context.Context, g *globalOptions, rp *reaper, command string, d *log.Delivery, envelope []byte, deadline time.Time, ackWait time.Duration) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c := exec.Command("sh", "-c", gatedShell(command))
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.Stdin = bytes.NewReader(envelope)
	c.Stdout = g.IO.Out
	var stderr tailBuffer
	c.Stderr = &teeWriter{g.IO.ErrOut, &stderr}
	e := &d.Event
	c.Env = append(os.Environ(),
		"EVT_POSITION="+strconv.FormatUint(e.Position, 10),
		"EVT_STREAM="+e.Stream,
		"EVT_VERSION="+strconv.FormatUint(e.Version, 10),
		"EVT_TYPE="+e.Type,
		"EVT_DELIVERY="+strconv.Itoa(d.Deliveries),
	)
	err, killed := runGroup(ctx, c, rp)
	if err == nil {
		return nil
	}
	if killed && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("killed after the ack wait (%s)", ackWait)
	}
	if last := stderr.lastLine(); last != "" {
		return fmt.Errorf("%v: %s", err, last)
	}
	return err
}

// tailBuffer keeps the last few hundred bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 512 {
		t.b = t.b[len(t.b)-512:]
	}
	return len(p), nil
}

func (t *tailBuffer) lastLine() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

type teeWriter struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.b.Write(p)
	return t.a.Write(p)
}

func newAckCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "ack NAME POSITION...",
		Short: "Ack events of a group consumed with --manual-ack",
		Long: `Ack events of consumer group NAME by position, once they are handled:
the group does not deliver them again. This is for events that
"evt consume NAME --manual-ack" printed, whose lease lasts until this ack
or the group's --ack-wait, even after the consumer exited; other members
ack their own. Exits 1 if a position is not leased to a --manual-ack
consumer (never delivered, acked already, past its --ack-wait, or now
another member's), after acking the others.`,
		Example: `  evt consume mailer --manual-ack --count 2 --jq .position
  evt ack mailer 3 4`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			positions, err := parsePositions(args[1:])
			if err != nil {
				return err
			}
			_, grp, done, err := g.openGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer done()
			n, err := grp.Ack(cmd.Context(), positions...)
			if err != nil {
				return err
			}
			if n < len(positions) {
				return fmt.Errorf("acked %d of %d: the others are not leased to a --manual-ack consumer of %s (never delivered, acked already, or past --ack-wait)", n, len(positions), args[0])
			}
			return nil
		},
	}
}
