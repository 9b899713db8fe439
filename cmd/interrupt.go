package cmd

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/evtdev/evt/log"
)

// Interrupts. CLI.md: 130 means nothing of a write was committed; once it
// is committed, the command reports it and exits 0; long commands stop
// promptly. Two ways of keeping that, chosen per command:
//
//   - Commands that read their context (tail -f, import, compact, verify,
//     consume, …) get one that SIGINT and SIGTERM cancel; they stop at their
//     next safe point and exit 130, or 0 if they had finished anyway.
//   - evt append never reads its context before its commit point, and a
//     signal watcher costs an append process about half a millisecond (a
//     signal thread and two goroutines at start, signal.Stop at exit; see
//     the report of issue 15). So no watcher: SIGINT and SIGTERM keep their
//     default action and end the process, which the store survives as it
//     survives kill -9 (an unfinished batch is never committed), and a
//     shell sees the signal's status (130 for ^C).
//
// Either way, from an append's commit point (log.Committing) the process
// ignores both signals until it exits: the batch will be stored, so the
// command must live to report it and exit 0.

// interruptContext is the context Main runs the command line args with,
// and the function that releases its signal handling.
func interruptContext(args []string) (context.Context, func()) {
	ctx := log.WithCommitHook(context.Background(), ignoreInterrupts)
	if commandWord(args) == "append" {
		return ctx, func() {}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // restore the default handling, so a second ^C is not ignored
	}()
	return ctx, stop
}

// ignoreInterrupts makes the process ignore SIGINT and SIGTERM from now
// on (it also ends their delivery to a watcher).
func ignoreInterrupts() { signal.Ignore(os.Interrupt, syscall.SIGTERM) }

// commandWord is the first word of args that is not a global flag or a
// flag's value: the name of the top-level command (or ""). It skips the
// flags hotCommand skips (globalValueFlags, which TestHotCommandFlags
// keeps whole).
func commandWord(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return ""
		case a == "-o":
			i++ // -o FORMAT
		case strings.HasPrefix(a, "--"):
			if name, _, hasValue := strings.Cut(a[2:], "="); globalValueFlags[name] && !hasValue {
				i++ // --dir DIR
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// -oFORMAT, -h, …
		default:
			return a
		}
	}
	return ""
}
