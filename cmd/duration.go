package cmd

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/evtdev/evt/codec"
)

// durationValue is the flag value of every duration flag. It reads with
// codec.ParseDuration, the parser of @-DURATION cursors, so the command
// line, EVT_<FLAG> and the config file all take 7d and 1d12h and refuse
// the same overflow, with the same message (pflag's own duration flag
// takes neither d nor w, and speaks time.ParseDuration's words).
type durationValue struct {
	p *time.Duration
	// positive refuses 0: for --ack-wait or --lock-timeout no time at
	// all has no meaning. Where 0 means "no limit" (tail --timeout) the
	// flag's help says so.
	positive bool
}

// durationVar defines a duration flag stored into p, with default def.
func durationVar(fs *pflag.FlagSet, p *time.Duration, name string, def time.Duration, positive bool, usage string) {
	*p = def
	fs.Var(&durationValue{p: p, positive: positive}, name, usage)
}

func (d *durationValue) Set(s string) error {
	v, err := codec.ParseDuration(s)
	var de *codec.DurationError
	if d.positive && (v == 0 && err == nil || errors.As(err, &de) && de.Negative) {
		return fmt.Errorf("invalid value %q: want a duration of more than 0", clipText(s))
	}
	if err != nil {
		return err
	}
	*d.p = v
	return nil
}

// Type names the value in --help ("--timeout duration").
func (d *durationValue) Type() string { return "duration" }

// String is the value as evt config and --help show it: 7d, 1h30m, 30s.
// Zero is "0", which pflag's help leaves out as a zero default.
func (d *durationValue) String() string {
	if *d.p == 0 {
		return "0"
	}
	return codec.FormatDuration(*d.p)
}
