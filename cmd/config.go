package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/log"
)

// Where a flag's value came from, as `evt config` shows it.
const (
	sourceFlag    = "flag"
	sourceEnv     = "env"
	sourceFile    = "file"
	sourceDefault = "default"
)

// execVariables are the variables evt sets for the commands it runs
// (replay and consume --exec, see CLI.md): they describe the event being
// handled. EVT_TYPE is also --type's variable, so in such a command (one
// that has EVT_POSITION) they set no flag: a handler's own `evt tail` must
// not filter by the type of the event it was given. Everywhere else
// EVT_TYPE sets --type, as every EVT_<FLAG> sets its flag.
var execVariables = map[string]bool{
	"EVT_POSITION": true,
	"EVT_STREAM":   true,
	"EVT_VERSION":  true,
	"EVT_TYPE":     true,
	"EVT_DELIVERY": true,
}

// inExecCommand reports whether this process is a command that evt
// --exec runs: EVT_POSITION is the one variable --exec always sets that
// no flag claims.
func inExecCommand() bool { return os.Getenv("EVT_POSITION") != "" }

// notSettings are flags that neither the environment nor the config file
// sets: --help and --version are actions, checked before any config is
// read, and --config names the file itself (EVT_CONFIG is read by
// readConfigFile).
var notSettings = map[string]bool{"help": true, "version": true, "config": true}

// configState records what load found.
type configState struct {
	loadedFor *cobra.Command
	err       error
	file      string            // absolute path of the config file read, "" if none
	fileFrom  string            // how it was chosen: flag, env or default (found by search)
	sources   map[string]string // flag name → sourceFlag, sourceEnv, sourceFile or sourceDefault
}

// envName is the variable that sets a flag: EVT_ and the flag's name in
// upper case with dashes as underscores (--lock-timeout → EVT_LOCK_TIMEOUT).
func envName(flag string) string {
	return "EVT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// load gives every flag of cmd (its own and those it inherits) that was
// not set on the command line the value of EVT_<FLAG> or, failing that, of
// the same key in the config file, the stingoftheviper way: afterwards the
// options structs hold the final values and viper is not needed again.
// A value from env or file that does not parse is a usage error naming
// its source; a config file that cannot be read or parsed is an error.
//
// Cobra runs load from the root's PersistentPreRunE. Completion functions,
// which cobra calls without that hook, call g.load(cmd) themselves before
// reading g (for StoreDir). Loading twice for the same command is a no-op.
func (g *globalOptions) load(cmd *cobra.Command) error {
	if g.cfg.loadedFor == cmd {
		return g.cfg.err
	}
	g.cfg = configState{loadedFor: cmd, sources: map[string]string{}}
	g.cfg.err = g.loadFor(cmd)
	return g.cfg.err
}

func (g *globalOptions) loadFor(cmd *cobra.Command) error {
	if cmd.Name() == cobra.ShellCompRequestCmd || cmd.Name() == cobra.ShellCompNoDescRequestCmd {
		return nil // completing: a broken config must not break the shell
	}
	v := viper.New()
	if err := g.readConfigFile(cmd, v); err != nil {
		return err
	}

	g.warnUnknownKeys(cmd.Root(), v)

	var errs []error
	execCommand := inExecCommand()
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if notSettings[f.Name] {
			return
		}
		env := envName(f.Name)
		fromEnv := false
		if !(execCommand && execVariables[env]) {
			_ = v.BindEnv(f.Name, env) // only fails without a key
			// Viper's own test for "set": present and not empty.
			val, ok := os.LookupEnv(env)
			fromEnv = ok && val != ""
		}
		// The nats-* settings live in the file's nats: block.
		fileKey := f.Name
		if k, ok := natsFlag(f.Name); ok {
			fileKey = k
		}
		key := f.Name
		switch {
		case f.Changed:
			g.cfg.sources[f.Name] = sourceFlag
			return
		case fromEnv:
			g.cfg.sources[f.Name] = sourceEnv
		case g.cfg.file != "" && v.InConfig(fileKey):
			g.cfg.sources[f.Name] = sourceFile
			key = fileKey
		default:
			g.cfg.sources[f.Name] = sourceDefault
			return
		}
		if err := setFlag(f, v.Get(key)); err != nil {
			if fromEnv {
				errs = append(errs, usageErrorf("%s: %w", env, err))
			} else {
				errs = append(errs, usageErrorf("config file %s: %s: %w", g.cfg.file, fileKey, err))
			}
		}
	})
	if len(errs) > 0 {
		return errs[0] // one line: the first bad value, in flag-name order
	}
	return nil
}

// readConfigFile finds the config file (--config or EVT_CONFIG, which must
// exist; else ./evt.yaml; else $XDG_CONFIG_HOME/evt/config.yaml) and reads
// it into v. No file at all is fine.
func (g *globalOptions) readConfigFile(cmd *cobra.Command, v *viper.Viper) error {
	var path string
	if f := cmd.Flags().Lookup("config"); f != nil && f.Changed {
		path, g.cfg.fileFrom = g.ConfigFile, sourceFlag
	} else if e := os.Getenv(envName("config")); e != "" {
		path, g.cfg.fileFrom = e, sourceEnv
	} else {
		g.cfg.fileFrom = sourceDefault
		path = "evt.yaml"
		if !isFile(path) {
			path = ""
			if dir := xdgDir("XDG_CONFIG_HOME", ".config"); dir != "" {
				if p := filepath.Join(dir, "evt", "config.yaml"); isFile(p) {
					path = p
				}
			}
		}
		if path == "" {
			return nil
		}
	}
	path = expandHome(path)
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in our message already
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	// YAML only (JSON, being YAML, works too): one format to document.
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		var pe viper.ConfigParseError
		if errors.As(err, &pe) {
			err = pe.Unwrap() // drop viper's "While parsing config:"
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	g.cfg.file = path
	return nil
}

// configSections are the config file's keys that are no flag: sections
// that a command reads itself (fold --spec NAME reads folds:). Add a new
// section here, or every command warns about it.
var configSections = map[string]bool{"folds": true, "nats": true}

// warnUnknownKeys says on stderr, one line each, which top-level keys of
// the config file no command has a flag for (lock_timeout for
// lock-timeout): evt ignores them, and silence would hide the typo. A key
// that is a flag of another command is no typo: the file serves them all.
func (g *globalOptions) warnUnknownKeys(root *cobra.Command, v *viper.Viper) {
	if g.cfg.file == "" {
		return
	}
	keys := v.AllKeys() // lower case, nested keys as a.b
	sort.Strings(keys)
	known := knownKeys(root)
	if root.Annotations[hotTreeAnnotation] != "" && slices.ContainsFunc(keys, func(k string) bool {
		top, _, _ := strings.Cut(k, ".")
		return !known[top]
	}) {
		// A hot command's tree (newRootCmdFor) lacks the other commands,
		// whose flags are keys of the same file too: only the whole tree
		// can tell a key of theirs from an unknown one.
		known = knownKeys(newRootCmd(g.IO))
	}
	seen := map[string]bool{}
	for _, key := range keys {
		top, sub, _ := strings.Cut(key, ".")
		if top == "nats" {
			// The nats: block holds the nats-* settings, by their names
			// after nats- with underscores (id_lookback).
			sub, _, _ = strings.Cut(sub, ".")
			if !known["nats-"+strings.ReplaceAll(sub, "_", "-")] && !seen[key] {
				seen[key] = true
				fmt.Fprintf(g.IO.ErrOut, "evt: warning: config file %s: unknown key \"nats.%s\"; ignored\n", g.cfg.file, sub)
			}
			continue
		}
		if known[top] || seen[top] {
			continue
		}
		seen[top] = true
		hint := ""
		if alt := strings.ReplaceAll(top, "_", "-"); known[alt] {
			hint = fmt.Sprintf(" (did you mean %s?)", alt)
		} else if notSettings[top] {
			hint = fmt.Sprintf(" (--%s is not a setting)", top)
		}
		fmt.Fprintf(g.IO.ErrOut, "evt: warning: config file %s: unknown key %q%s; ignored\n", g.cfg.file, top, hint)
	}
}

// knownKeys are the keys a config file may have: the config sections and
// the flag names of every command under root (true when the flag is a
// setting, false for the flags that are not, such as --config).
func knownKeys(root *cobra.Command) map[string]bool {
	known := map[string]bool{}
	for k := range configSections {
		known[k] = true
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.InheritedFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { known[f.Name] = !notSettings[f.Name] })
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return known
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// setFlag sets f from a value that viper found: a string from the
// environment, or whatever YAML made of the config file's value.
func setFlag(f *pflag.Flag, val any) error {
	var err error
	switch val := val.(type) {
	case nil:
		return nil // "key:" with no value: leave the default
	case map[string]any:
		return errors.New("want a single value, not a mapping")
	case []any:
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return errors.New("want a single value, not a list")
		}
		items := make([]string, len(val))
		for i, item := range val {
			items[i] = fmt.Sprint(item)
		}
		if err = sv.Replace(items); err != nil {
			return badFlagValue(f, strings.Join(items, ","), err)
		}
	default:
		s := fmt.Sprint(val)
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			// A repeatable flag from one string (EVT_TYPE=Opened,Closed):
			// a comma-separated list, as --only takes on the command line.
			if err = sv.Replace(strings.Split(s, ",")); err != nil {
				return badFlagValue(f, s, err)
			}
			break
		}
		if err = f.Value.Set(s); err != nil {
			return badFlagValue(f, s, err)
		}
	}
	// As if given on the command line, so required flags are satisfied;
	// g.Source tells the two apart.
	f.Changed = true
	return nil
}

// Source says where the named flag's value came from: "flag", "env",
// "file" or "default".
func (g *globalOptions) Source(flag string) string {
	if s, ok := g.cfg.sources[flag]; ok {
		return s
	}
	return sourceDefault
}

// ConfigFileUsed is the absolute path of the config file that was read, or
// "" if there was none.
func (g *globalOptions) ConfigFileUsed() string { return g.cfg.file }

// setting is one row of `evt config`.
type setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"` // flag, env, file:PATH or default
}

func newConfigCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Show the effective global settings and where each comes from",
		Long: `Show each global setting (the flags every command takes) with its
effective value and its source: flag, env (EVT_<FLAG>), file:PATH (the
config file) or default. Precedence is flag > env > file > default.

The config file is --config FILE, else ./evt.yaml, else
$XDG_CONFIG_HOME/evt/config.yaml; its keys are flag names:

  dir: /var/lib/evt
  sync: interval
  lock-timeout: 30s

A key that is no flag of any command (lock_timeout for lock-timeout) is
named in a warning on stderr and ignored. A repeatable flag takes a list
in the file and a comma-separated one from the environment
(EVT_TYPE=Opened,Closed). In a command that evt --exec runs, EVT_TYPE is
the event's type and sets no flag.`,
		Example: `  evt config
  evt config --sync interval     # source: flag
  evt config -o json --jq 'select(.source != "default")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows := g.settings(cmd.Root().PersistentFlags())
			if g.remote != "" {
				row, err := g.serverVersion()
				if err != nil {
					return err
				}
				rows = append(rows, row)
			}
			return runConfig(g, rows)
		},
	}
}

// settings lists the persistent flags with their effective values.
func (g *globalOptions) settings(flags *pflag.FlagSet) []setting {
	var rows []setting
	flags.VisitAll(func(f *pflag.Flag) {
		s := setting{Key: f.Name, Value: f.Value.String(), Source: g.Source(f.Name)}
		if _, ok := natsFlag(f.Name); ok && g.remote == "" {
			return // they mean nothing to a local store
		}
		switch f.Name {
		case "dir":
			s.Value = g.StoreDir()
		case "store":
			// The kind and the place, from whichever of --dir and
			// --store won.
			s.Value, s.Source = "local "+g.StoreDir(), g.storeFrom
			if g.remote != "" {
				s.Value = "nats " + g.remote
			}
			if s.Source == "" {
				s.Source = sourceDefault
			}
		case "config":
			s.Value, s.Source = g.cfg.file, g.cfg.fileFrom
			if s.Source == "" {
				s.Source = sourceDefault
			}
		}
		if s.Source == sourceFile {
			s.Source += ":" + g.cfg.file
		}
		rows = append(rows, s)
	})
	return rows
}

// serverVersion is the row of `evt config` that says which server a nats
// store is on.
func (g *globalOptions) serverVersion() (setting, error) {
	row := setting{Key: "server_version", Source: "server"}
	s, err := g.openRemote(false)
	if errors.Is(err, log.ErrNoStore) {
		// Connected, but no stream yet: the error knows the server.
		row.Value = "unknown (no store yet)"
		var v interface{ ServerVersion() string }
		if errors.As(err, &v) {
			row.Value = v.ServerVersion()
		}
		return row, nil
	}
	if err != nil {
		return row, err
	}
	defer s.Close()
	if v, ok := s.(interface{ ServerVersion() string }); ok {
		row.Value = v.ServerVersion()
	}
	return row, nil
}

func runConfig(g *globalOptions, rows []setting) error {
	p, err := g.printer()
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := p.Row([]output.Field{
			{Key: "key", Value: r.Key},
			{Key: "value", Value: r.Value},
			{Key: "source", Value: r.Source},
		}); err != nil {
			return err
		}
	}
	return p.Flush()
}
