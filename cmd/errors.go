package cmd

import (
	"errors"
	"fmt"
	"strings"

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
// A run that a signal interrupted exits 130 whatever it returned: the
// error is most likely the cancellation itself.
func exitCode(err error, interrupted bool) int {
	var ue *usageError
	switch {
	case interrupted:
		return exitInterrupted
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, log.ErrBadName):
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
