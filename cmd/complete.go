package cmd

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/evtdev/evt/log"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// Dynamic shell completion. Cobra's hidden __complete command calls the
// functions below as the user presses TAB, so they must be quick and must
// never change anything: the store is opened read-only without recovery,
// and a store that does not exist is never created (no candidates).
// Nothing here scans the log: stream names and types come from the heads
// table (Store.Streams), group names from the groups directory, fold spec
// names from the config file.

// argCompletions says what each positional argument completes to, by
// command path (without "evt"). A nil entry, or an argument past the end,
// completes to nothing. Add a command that takes streams or groups here.
func (c completer) argCompletions() []argCompletion {
	return []argCompletion{
		{"append", []cobra.CompletionFunc{c.streams, c.types}}, // DATA: JSON, @FILE or -
		{"tail", []cobra.CompletionFunc{c.streams}},
		{"replay", []cobra.CompletionFunc{c.streams}},
		{"fold", []cobra.CompletionFunc{c.streams}},
		{"streams", []cobra.CompletionFunc{c.streams}},
		{"stats", []cobra.CompletionFunc{c.streams}},
		{"export", []cobra.CompletionFunc{c.streams}},
		{"consume", []cobra.CompletionFunc{c.groups}},
		{"ack", []cobra.CompletionFunc{c.groups}},                // POSITION...: nothing
		{"group create", []cobra.CompletionFunc{nil, c.streams}}, // NAME is a new name
		{"group show", []cobra.CompletionFunc{c.groups}},
		{"group reset", []cobra.CompletionFunc{c.groups}},
		{"group rm", []cobra.CompletionFunc{c.groups}},
		{"group parked", []cobra.CompletionFunc{c.groups}},
		{"group retry", []cobra.CompletionFunc{c.groups}},
		{"delete", []cobra.CompletionFunc{c.streams}},
		{"truncate", []cobra.CompletionFunc{c.streams}},
		{"retention set", []cobra.CompletionFunc{c.streams}},
		{"retention rm", []cobra.CompletionFunc{c.rules}},
	}
}

// flagCompletions says what flag values complete to, by command path and
// flag name. Flags that already have a completion (the enums --sync,
// --output, --expect, --ordering, registered where they are defined) are
// left alone; flags in neither place complete file names.
func (c completer) flagCompletions() []flagCompletion {
	return []flagCompletion{
		{"", "dir", dirCompletion},
		{"", "config", configFileCompletion},
		{"tail", "type", c.types},
		{"tail", "group", c.groups},
		{"tail", "from", cursorCompletion("start", "end", "now", "stored")},
		{"replay", "type", c.types},
		{"replay", "from", cursorCompletion("start", "end", "now")},
		{"replay", "to", cursorCompletion("start", "end", "now")},
		{"fold", "spec", c.specs},
		{"stats", "type", c.types},
		{"export", "type", c.types},
		{"export", "from", cursorCompletion("start", "end", "now")},
		{"export", "to", cursorCompletion("start", "end", "now")},
		{"group create", "type", c.types},
		{"group create", "from", cursorCompletion("start", "end", "now")},
		{"group reset", "to", cursorCompletion("start", "end", "now")},
		{"compact", "auto", cobra.FixedCompletions([]string{"on", "off"}, cobra.ShellCompDirectiveNoFileComp)},
		{"delete", "expect", cobra.FixedCompletions([]string{"exists"}, cobra.ShellCompDirectiveNoFileComp)},
		{"truncate", "expect", cobra.FixedCompletions([]string{"exists"}, cobra.ShellCompDirectiveNoFileComp)},
	}
}

type argCompletion struct {
	path string                 // command path without "evt"
	args []cobra.CompletionFunc // one per positional argument
}

type flagCompletion struct {
	path, flag string // command path without "evt" ("" is the root), flag name
	complete   cobra.CompletionFunc
}

// registerCompletions sets the dynamic completions of argCompletions and
// flagCompletions on the tree under root. A command or flag that is not
// in the tree is skipped (TestCompletionTables catches typos).
func registerCompletions(g *globalOptions, root *cobra.Command) {
	c := completer{g: g}
	for _, a := range c.argCompletions() {
		if cmd := commandAt(root, a.path); cmd != nil && cmd.ValidArgsFunction == nil && cmd.ValidArgs == nil {
			cmd.ValidArgsFunction = positional(a.args)
		}
	}
	for _, f := range c.flagCompletions() {
		cmd := commandAt(root, f.path)
		if cmd == nil || cmd.Flag(f.flag) == nil {
			continue
		}
		if _, ok := cmd.GetFlagCompletionFunc(f.flag); ok {
			continue
		}
		_ = cmd.RegisterFlagCompletionFunc(f.flag, f.complete) // checked above: cannot fail
	}
}

// commandAt finds the command at path ("group show") under root by name,
// without cobra's Find, which would fall back to root for a missing one.
func commandAt(root *cobra.Command, path string) *cobra.Command {
	cmd := root
	for _, name := range strings.Fields(path) {
		i := slices.IndexFunc(cmd.Commands(), func(sub *cobra.Command) bool { return sub.Name() == name })
		if i < 0 {
			return nil
		}
		cmd = cmd.Commands()[i]
	}
	return cmd
}

// positional completes argument i with fns[i].
func positional(fns []cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) < len(fns) && fns[len(args)] != nil {
			return fns[len(args)](cmd, args, toComplete)
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// completer holds the completion functions that read the store or the
// config file.
type completer struct{ g *globalOptions }

// open resolves the settings of cmd (cobra runs no PersistentPreRunE
// for the command being completed) and opens its store read-only, without
// recovery. It returns nil when there is no store or it cannot be read:
// completion has no way to report an error but BASH_COMP_DEBUG_FILE.
func (c completer) open(cmd *cobra.Command) log.Store {
	if err := c.g.load(cmd); err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil
	}
	if c.g.StoreDir() == "" || !c.g.storeExists() {
		return nil // and never create one
	}
	s, err := c.g.openUnrecovered()
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil
	}
	return s
}

// streams completes stream names, each described by its version and last
// event type.
func (c completer) streams(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	s := c.open(cmd)
	if s == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer s.Close()
	infos, err := s.Streams(func(name string) bool { return strings.HasPrefix(name, toComplete) })
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]cobra.Completion, len(infos))
	for i, info := range infos {
		out[i] = cobra.CompletionWithDesc(info.Stream, fmt.Sprintf("version %d, last %s", info.Version, info.LastType))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// types completes event types: the type of each stream's last event, which
// the heads table holds. Types that no stream ends with are missed; finding
// them would mean reading the log.
func (c completer) types(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	s := c.open(cmd)
	if s == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer s.Close()
	infos, err := s.Streams(nil)
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, info := range infos {
		if strings.HasPrefix(info.LastType, toComplete) {
			out = append(out, info.LastType)
		}
	}
	sort.Strings(out)
	return slices.Compact(out), cobra.ShellCompDirectiveNoFileComp
}

// groups completes consumer group names.
func (c completer) groups(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	s := c.open(cmd)
	if s == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer s.Close()
	names, err := s.Groups(cmd.Context())
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, name := range names {
		if strings.HasPrefix(name, toComplete) {
			out = append(out, name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// rules completes the selections that have a retention rule.
func (c completer) rules(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	s := c.open(cmd)
	if s == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer s.Close()
	r, err := s.Retention()
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, rule := range r.Rules {
		if strings.HasPrefix(rule.Selection, toComplete) {
			out = append(out, rule.Selection)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// specs completes the names under folds: in the config file, and file
// names, since --spec takes either. It needs no store.
func (c completer) specs(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if err := c.g.load(cmd); err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil, cobra.ShellCompDirectiveDefault
	}
	path := c.g.ConfigFileUsed()
	if path == "" {
		return nil, cobra.ShellCompDirectiveDefault
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cobra.ShellCompDirectiveDefault
	}
	// Parsed here, as configFold does: viper lowers the case of keys.
	var cfg struct {
		Folds map[string]any `yaml:"folds"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil, cobra.ShellCompDirectiveDefault
	}
	var out []cobra.Completion
	for name := range cfg.Folds {
		if strings.HasPrefix(name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(name, "fold spec in "+filepath.Base(path)))
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveDefault
}

// cursorDescriptions describe the cursor keywords, as in evt help.
var cursorDescriptions = map[string]string{
	"start":  "the first retained event",
	"end":    "after the last event: only new events",
	"now":    "after the last event: only new events",
	"stored": "the group's committed position (with --group)",
}

// cursorCompletion completes the named cursor keywords. Positions, +N, -N
// and @TIME are typed.
func cursorCompletion(keywords ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, k := range keywords {
			if strings.HasPrefix(k, toComplete) {
				out = append(out, cobra.CompletionWithDesc(k, cursorDescriptions[k]))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func dirCompletion(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

func configFileCompletion(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []cobra.Completion{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt
}

// completionScripts are the files of completions/ and how each is made;
// they are what `evt completion SHELL` prints.
var completionScripts = []struct {
	file string
	gen  func(root *cobra.Command, w io.Writer) error
}{
	{"evt.bash", func(root *cobra.Command, w io.Writer) error { return root.GenBashCompletionV2(w, true) }},
	{"evt.zsh", func(root *cobra.Command, w io.Writer) error { return root.GenZshCompletion(w) }},
	{"evt.fish", func(root *cobra.Command, w io.Writer) error { return root.GenFishCompletion(w, true) }},
	{"evt.ps1", func(root *cobra.Command, w io.Writer) error { return root.GenPowerShellCompletionWithDesc(w) }},
}

// GenerateCompletions writes the bash, zsh, fish and PowerShell completion
// scripts of evt's command tree into dir (the repository's completions/,
// kept fresh by TestCompletionsFresh).
func GenerateCompletions(dir string) error {
	root := newRootCmd(&IOStreams{In: new(bytes.Buffer), Out: io.Discard, ErrOut: io.Discard})
	for _, s := range completionScripts {
		var buf bytes.Buffer
		if err := s.gen(root, &buf); err != nil {
			return fmt.Errorf("%s: %w", s.file, err)
		}
		if err := os.WriteFile(filepath.Join(dir, s.file), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
