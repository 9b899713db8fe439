package cmd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/evtdev/evt/log"
)

// Exit codes, as promised in CLI.md.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitConflict    = 3
	exitNotFound    = 4
	exitInterrupted = 130
)

// usageError marks an error in how evt was called (an unknown command or
// flag, a wrong number of arguments, a bad flag value from the command
// line, the environment or the config file). It exits 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf builds a usage error (exit 2); %w wraps as in fmt.Errorf.
// Commands use it for every check of their arguments and flag values that
// cobra cannot make itself.
func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// asUsageError marks err as a usage error, leaving nil and errors that are
// already usage errors as they are.
func asUsageError(err error) error {
	var ue *usageError
	if err == nil || errors.As(err, &ue) {
		return err
	}
	return &usageError{err}
}

// exitCode maps the error a command returned to the process exit code.
// A run that a signal interrupted and that failed exits 130: the error is
// most likely the cancellation itself, and a write that fails committed
// nothing. One that succeeded all the same (an append past its commit
// point) exits 0: CLI.md's interrupt never lies about a write.
func exitCode(err error, interrupted bool) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case interrupted:
		return exitInterrupted
	case errors.As(err, &ue), errors.Is(err, log.ErrBadGroupName), errors.Is(err, log.ErrUnsupported):
		return exitUsage
	case errors.Is(err, log.ErrConflict):
		return exitConflict
	case errors.Is(err, log.ErrNotFound), errors.Is(err, log.ErrNoStore):
		return exitNotFound
	default:
		return exitError
	}
}

// errorLine is the one line that evt prints for err: "evt: " and the
// message with its lines joined by "; " (blank lines and indentation, as in
// cobra's "Did you mean this?" suggestions, are dropped).
func errorLine(err error) string {
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		var parts []string
		for _, l := range strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if l = strings.TrimSpace(l); l != "" {
				parts = append(parts, l)
			}
		}
		msg = strings.Join(parts, "; ")
	}
	return "evt: " + msg
}

// badFlagValue says in evt's words why value is not a value of flag f:
// pflag and strconv would say `strconv.ParseUint: parsing "-3": invalid
// syntax`. It is the one message for a bad value, whether it came from the
// command line, the environment or the config file.
func badFlagValue(f *pflag.Flag, value string, cause error) error {
	t := f.Value.Type()
	switch t {
	case "duration":
		return cause // durationValue speaks evt's words already
	case "bool":
		return fmt.Errorf("invalid value %q: want true or false", value)
	}
	want, least, most, ok := integerLimits(t)
	if !ok {
		return fmt.Errorf("invalid value %q: %w", value, cause)
	}
	var ne *strconv.NumError
	if errors.As(cause, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
		if strings.HasPrefix(value, "-") {
			return fmt.Errorf("%s is too small (at least %s)", value, least)
		}
		return fmt.Errorf("%s is too large (at most %s)", value, most)
	}
	return fmt.Errorf("invalid value %q: want %s", value, want)
}

// integerLimits describes the integer flag types evt uses: what to call
// their values and the range they hold.
func integerLimits(flagType string) (want, least, most string, ok bool) {
	switch flagType {
	case "int", "int64":
		return "a whole number", strconv.FormatInt(math.MinInt64, 10), strconv.FormatInt(math.MaxInt64, 10), true
	case "uint32":
		return "a whole number, 0 or more", "0", strconv.FormatUint(math.MaxUint32, 10), true
	case "uint", "uint64":
		return "a whole number, 0 or more", "0", strconv.FormatUint(math.MaxUint64, 10), true
	}
	return "", "", "", false
}

// flagError turns pflag's parse errors into evt's words (exit 2).
func flagError(err error) error {
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) {
		f := ive.GetFlag()
		name := "--" + f.Name
		if f.Shorthand != "" {
			name = "-" + f.Shorthand + "/" + name
		}
		err = fmt.Errorf("%s: %w", name, badFlagValue(f, ive.GetValue(), errors.Unwrap(ive)))
	}
	return asUsageError(err)
}
