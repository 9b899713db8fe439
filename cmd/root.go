// Package cmd is evt's command line: one file per command, the root that
// wires them together, configuration, terminal handling and exit codes.
// Nothing outside this package knows about cobra, viper or terminals.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/evtdev/evt/log"
)

// globalOptions holds the persistent flags, resolved flag > env > config
// file > default before any command runs (see load in config.go), and the
// IOStreams. Every newXCmd gets the same pointer; run functions read it and
// never call viper.
type globalOptions struct {
	IO *IOStreams

	Dir         string        // --dir as given (flag, EVT_DIR or dir:); "" = default. Use StoreDir.
	ConfigFile  string        // --config as given; ConfigFileUsed says which file was read
	Output      string        // -o/--output; "" = automatic (table on a terminal, json when piped)
	Sync        string        // --sync: "always", "interval" or "none"
	LockTimeout time.Duration // --lock-timeout: how long an appender waits for the lock
	JQ          string        // --jq: a jq expression every printed document goes through
	SegmentSize int64         // --segment-size: bytes at which appenders seal a segment
	Store       string        // --store as given: a directory, file://DIR, nats:// or tls://
	Nats        natsOptions   // the nats-* settings of a nats store

	remote    string    // the nats store URL when the store is one (resolveStore)
	kept      log.Store // when set, the store openStore hands out, never closed by a command (evt bench)
	storeFrom string    // the source of the setting that chose the store: dir's or store's

	cfg configState // where each value came from; filled by load
}

// Values of --sync.
const (
	syncAlways   = "always"
	syncInterval = "interval"
	syncNone     = "none"
)

// StoreDir is the store directory: --dir, else EVT_DIR, else dir: in the
// config file, else $XDG_DATA_HOME/evt, else ~/.local/share/evt. A leading
// ~/ is expanded. It is "" only when no default can be found because
// neither XDG_DATA_HOME nor HOME is set.
func (g *globalOptions) StoreDir() string {
	if g.Dir != "" {
		return expandHome(g.Dir)
	}
	data := xdgDir("XDG_DATA_HOME", ".local", "share")
	if data == "" {
		return ""
	}
	return filepath.Join(data, "evt")
}

// Main runs evt with the process's arguments and standard files and
// returns the exit code. SIGINT and SIGTERM cancel the command's context,
// or end an append before its commit point (see interruptContext); a
// second one kills the process.
func Main() int {
	ctx, stop := interruptContext(os.Args[1:])
	defer stop()
	defer startProfile()()
	return run(ctx, System(), os.Args[1:])
}

// run executes one command line and prints its error, if any, as the one
// line "evt: <message>" on ios.ErrOut. A cancelled ctx means a signal
// interrupted the run.
func run(ctx context.Context, ios *IOStreams, args []string) (code int) {
	defer func() {
		// CLI.md promises no Go stack traces. A panic is still a bug, so
		// GOTRACEBACK (which Go users set to see traces) lets it through.
		if r := recover(); r != nil {
			if os.Getenv("GOTRACEBACK") != "" {
				panic(r)
			}
			fmt.Fprintln(ios.ErrOut, errorLine(fmt.Errorf("internal error: %v (run with GOTRACEBACK=1 for a stack trace)", r)))
			code = exitError
		}
	}()
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	root := newRootCmdFor(ios, args)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	if err != nil && !(interrupted && errors.Is(err, context.Canceled)) {
		fmt.Fprintln(ios.ErrOut, errorLine(err))
	}
	return exitCode(err, interrupted)
}

// hotCommands are the commands run once per event from scripts, whose
// start-up is their cost: for them run builds only the root and that one
// command (see newRootCmdFor).
var hotCommands = map[string]func(*globalOptions) *cobra.Command{
	"append": newAppendCmd,
}

// newRootCmdFor builds the command tree args need. When args run a hot
// command, that is the root and the one command: building the other 20,
// the help topics and the completions is a quarter of a millisecond, a
// tenth of what an `evt append` costs besides its fsync. Anything that
// could show the rest of the tree (help, completion, a suggestion for a
// mistyped word, a flag the peek does not know) gets the whole tree, so
// it behaves as it always has.
func newRootCmdFor(ios *IOStreams, args []string) *cobra.Command {
	newCmd := hotCommand(args)
	if newCmd == nil {
		return newRootCmd(ios)
	}
	root, g := newBareRootCmd(ios)
	root.Annotations = map[string]string{hotTreeAnnotation: "yes"}
	root.CompletionOptions.DisableDefaultCmd = true // no completion in this tree: __complete is never hot
	root.AddCommand(newCmd(g))
	finishCommandTree(root)
	return root
}

// hotTreeAnnotation marks the root of a hot command's tree, for code that
// needs to know the whole tree (the config file's known keys).
const hotTreeAnnotation = "evt-hot-tree"

// hotCommand returns the constructor of the hot command that args run, or
// nil when they run another one or ask for help. It skips the global flags
// before the command word, with their values, and gives up on any other
// flag there.
func hotCommand(args []string) func(*globalOptions) *cobra.Command {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			newCmd := hotCommands[a]
			if newCmd == nil {
				return nil
			}
			for _, rest := range args[i+1:] {
				if rest == "-h" || rest == "--help" || strings.HasPrefix(rest, "--help=") {
					return nil
				}
			}
			return newCmd
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case strings.HasPrefix(a, "--") && globalValueFlags[name]:
			if !hasValue {
				i++ // --dir DIR
			}
		case a == "-o":
			i++ // -o FORMAT
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			// -oFORMAT, -o=FORMAT
		default:
			return nil // --, --help, --version, or a flag root does not have
		}
	}
	return nil
}

// globalValueFlags are root's persistent flags, all of which take a value;
// hotCommand skips them. TestHotCommandFlags keeps the list whole.
var globalValueFlags = map[string]bool{
	"dir": true, "config": true, "output": true, "sync": true,
	"lock-timeout": true, "jq": true, "segment-size": true,
	"store": true, "nats-context": true, "nats-creds": true, "nats-id-lookback": true,
	"nats-replicas": true, "nats-timeout": true,
}

// newRootCmd builds the whole command tree.
func newRootCmd(ios *IOStreams) *cobra.Command {
	root, g := newBareRootCmd(ios)
	// The command registry: one newXCmd(g) per command, each in its own
	// file (cmd/x.go). Add yours to this list; `evt --help` sorts them.
	root.AddCommand(
		newAppendCmd(g),
		newStreamsCmd(g),
		newVerifyCmd(g),
		newRepairCmd(g),
		newTailCmd(g),
		newReplayCmd(g),
		newFoldCmd(g),
		newGroupCmd(g),
		newConsumeCmd(g),
		newAckCmd(g),
		newRetentionCmd(g),
		newDeleteCmd(g),
		newTruncateCmd(g),
		newCompactCmd(g),
		newBenchCmd(g),
		newConfigCmd(g),
		newVersionCmd(g),
		newDocsCmd(g),
		newStatsCmd(g),
		newExportCmd(g),
		newImportCmd(g),
		newSchemaCmd(g),
	)

	addVersionFlag(root)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	registerCompletions(g, root)
	addHelpTopics(root)
	wrapHelp(root, ios)
	finishCommandTree(root)
	return root
}

// newBareRootCmd is the root command, with the global flags and the hook
// that resolves them, and no commands under it yet.
func newBareRootCmd(ios *IOStreams) (*cobra.Command, *globalOptions) {
	g := &globalOptions{IO: ios, Sync: syncAlways, LockTimeout: 10 * time.Second}
	root := &cobra.Command{
		Use:   "evt",
		Short: "An append-only event log for the command line",
		Long: `evt keeps an append-only log of events in a directory: append events to
streams, tail and replay them, fold them into state, and share the work of
consuming them between processes.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// Subcommands must not set PersistentPreRun(E): cobra runs
			// only the nearest one, and this one resolves the config.
			if err := g.load(cmd); err != nil {
				return err
			}
			if err := g.resolveStore(); err != nil {
				return err
			}
			// A nats store's commands run in evt-nats (see remote.go),
			// before anything is read or opened here.
			if err := g.execRemote(); err != nil {
				return err
			}
			// Cobra checks these after this hook too; checking here,
			// after config values are applied, makes them usage errors.
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return asUsageError(err)
			}
			return asUsageError(cmd.ValidateFlagGroups())
		},
	}
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError(err) })

	pf := root.PersistentFlags()
	pf.StringVar(&g.Dir, "dir", "", "store directory (default $XDG_DATA_HOME/evt)")
	pf.StringVar(&g.Store, "store", "", "where the log lives: a directory (as --dir), or nats://HOST:PORT[,HOST:PORT...][/NAME] (or tls://) for a NATS JetStream store")
	addNatsFlags(pf, &g.Nats)
	pf.StringVar(&g.ConfigFile, "config", "", "config file (default ./evt.yaml, else $XDG_CONFIG_HOME/evt/config.yaml)")
	pf.StringVarP(&g.Output, "output", "o", "", "output format: json, pretty, table, yaml or template=GO-TEMPLATE (default: by terminal); prometheus for group ls and stats")
	pf.Var(newEnumValue(&g.Sync, syncAlways, syncInterval, syncNone), "sync",
		"when appends are flushed to disk: always (every batch), interval or none")
	durationVar(pf, &g.LockTimeout, "lock-timeout", g.LockTimeout, true, "how long to wait for the store's append lock (and evt compact for the compaction lock)")
	pf.StringVar(&g.JQ, "jq", "", "filter printed JSON through a jq expression (strings print raw)")
	pf.Int64Var(&g.SegmentSize, "segment-size", defaultSegmentSize, "size in bytes at which appends seal a segment and start the next")
	_ = pf.MarkHidden("segment-size") // for tests and experiments; the default is measured
	_ = root.RegisterFlagCompletionFunc("sync", cobra.FixedCompletions(
		[]string{syncAlways, syncInterval, syncNone}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{"json", "pretty", "table", "yaml", "template="}, cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveNoSpace))
	return root, g
}

// finishCommandTree makes every argument error a usage error (exit 2). A
// command with subcommands and no Run of its own gets one that prints help
// when called bare and rejects an unknown subcommand: cobra would print help
// and exit 0 for "evt group frob", and would give root's unknown-command
// error no type to tell it from other errors.
func finishCommandTree(c *cobra.Command) {
	switch {
	case c.HasSubCommands() && !c.Runnable():
		c.Args = unknownSubcommand
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	case c.Args != nil:
		validate := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := validate(cmd, args)
			if err == nil {
				return nil
			}
			if cmd.HasParent() && !strings.Contains(err.Error(), cmd.CommandPath()) {
				path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
				err = fmt.Errorf("%s: %w", path, err)
			}
			return asUsageError(err)
		}
	}
	for _, sub := range c.Commands() {
		finishCommandTree(sub)
	}
}

func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, applied only on its own error path
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		return usageErrorf("unknown command %q for %q (did you mean %q?)", args[0], cmd.CommandPath(), s[0])
	}
	return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
}

// enumValue is a string flag that accepts only the listed values. Its Set
// error names them, so the same message serves the command line, the
// environment and the config file.
type enumValue struct {
	p       *string
	allowed []string
}

// newEnumValue returns a flag value that stores into p, which must already
// hold the default, and accepts only allowed.
func newEnumValue(p *string, allowed ...string) pflag.Value {
	return &enumValue{p: p, allowed: allowed}
}

func (e *enumValue) String() string { return *e.p }
func (e *enumValue) Type() string   { return "string" }

func (e *enumValue) Set(s string) error {
	for _, a := range e.allowed {
		if s == a {
			*e.p = s
			return nil
		}
	}
	return fmt.Errorf("want %s", orList(e.allowed))
}

// orList renders [a b c] as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// xdgDir is the XDG base directory named by env, or ~/rel... when env is
// unset or relative (the XDG spec says to ignore relative paths). It is ""
// only when the home directory is unknown too.
func xdgDir(env string, rel ...string) string {
	if d := os.Getenv(env); filepath.IsAbs(d) {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(append([]string{home}, rel...)...)
}

// expandHome expands a leading "~" or "~/", which neither a config file
// nor a quoted shell word expands.
func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, p[1:])
}
