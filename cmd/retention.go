package cmd

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

func newRetentionCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Set how long streams keep their events",
		Long: `Retention rules remove old events: an event stream keeps history until a
limit removes it, a message queue forgets events once consumed.

A rule applies to the streams its SELECTION matches (a stream, a glob, or
'*'); every rule that matches a stream applies, the strictest wins:
  --max-age D      events older than D (90s, 12h, 7d, 2w) are removed
  --max-count N    a stream keeps its newest N events
  --until-acked    an event is removed once every consumer group whose
                   selection matches its stream has acked it (with no such
                   group, events stay): a message queue. Removed stays
                   removed: a group reset to the start, a group created
                   from the start, or the removal of the last group
                   reading a stream does not bring its events back
A store-wide --max-bytes SIZE (500MB, 10GiB) removes the oldest segments
while the log is larger.

--archive DIR (with a limit) archives instead of forgetting: before evt
compact reclaims the events of the rule's streams, it writes them to DIR
as one gzip-compressed file of NDJSON envelopes per compaction, named by
the positions of its first and last event
(00000000000000000001-00000000000000000420.ndjson.gz), synced before
any space is reclaimed. evt import FILE restores them with their ids,
times and metadata. Events evt delete or evt truncate removed are not
archived. A compaction that crashed after archiving archives nothing
twice: it leaves out what a file in DIR already holds. DIR belongs to
one store. On a nats store the same, from the purge of evt compact.

Reads honour the limits at once; evt compact reclaims the disk space.
Every limit removes a prefix of a stream (its oldest events), and a
stream whose events are all removed reads as not found.`,
	}
	cmd.AddCommand(newRetentionSetCmd(g), newRetentionLsCmd(g), newRetentionRmCmd(g))
	return cmd
}

func newRetentionSetCmd(g *globalOptions) *cobra.Command {
	var maxBytes string
	var maxAge time.Duration
	var maxCount uint64
	var untilAcked bool
	var archiveDir string
	cmd := &cobra.Command{
		Use:   "set [SELECTION] [--max-age D] [--max-count N] [--until-acked] [--archive DIR] [--max-bytes SIZE]",
		Short: "Set the retention rule of a selection, or the store's size limit",
		Long: `Set the retention rule of SELECTION, replacing the one it had, or with
--max-bytes alone the store-wide size limit. See evt retention --help.`,
		Example: `  evt retention set 'order-*' --max-age 30d
  evt retention set 'metrics-*' --max-count 1000
  evt retention set 'jobs-*' --until-acked
  evt retention set 'audit-*' --max-age 90d --archive /srv/evt-archive
  evt retention set --max-bytes 10GiB`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rule log.Rule
			if len(args) == 1 {
				sel, err := codec.ParseSelection(args[0])
				if err != nil {
					return usageErrorf("%w", err)
				}
				rule.Selection = sel.String()
			}
			rule.MaxAge = maxAge
			rule.MaxCount, rule.UntilAcked = maxCount, untilAcked
			var size int64
			if maxBytes != "" {
				n, err := parseSize(maxBytes)
				if err != nil {
					return usageErrorf("invalid --max-bytes: %w", err)
				}
				size = n
			}
			hasRule := rule.MaxAge > 0 || rule.MaxCount > 0 || rule.UntilAcked
			switch {
			case len(args) == 1 && !hasRule:
				return usageErrorf("retention set %s: give --max-age, --max-count or --until-acked", args[0])
			case len(args) == 0 && hasRule:
				return usageErrorf("retention set: --max-age, --max-count and --until-acked need a SELECTION ('*' for every stream)")
			case len(args) == 0 && maxBytes == "":
				return usageErrorf("retention set: give a SELECTION and a limit, or --max-bytes")
			}
			if cmd.Flags().Changed("archive") {
				if !hasRule {
					return usageErrorf("retention set: --archive needs a SELECTION and a limit (--max-age, --max-count or --until-acked)")
				}
				if archiveDir == "" {
					return usageErrorf("retention set: --archive needs a directory")
				}
				abs, err := filepath.Abs(archiveDir)
				if err != nil {
					return err
				}
				rule.Archive = abs
			}
			// Setting a policy is a write: like append and group create,
			// it creates the store, so set-up can come in any order.
			s, err := g.openStore(true)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.UpdateRetention(func(r *log.Retention) error {
				if hasRule {
					r.Rules = removeRule(r.Rules, rule.Selection)
					r.Rules = append(r.Rules, rule)
				}
				if maxBytes != "" {
					r.MaxBytes = size
				}
				return nil
			})
		},
	}
	durationVar(cmd.Flags(), &maxAge, "max-age", 0, true, "remove events older than this (90s, 12h, 7d, 2w)")
	cmd.Flags().Uint64Var(&maxCount, "max-count", 0, "keep each stream's newest N events")
	cmd.Flags().BoolVar(&untilAcked, "until-acked", false, "remove events once every group reading them acked them (a message queue)")
	cmd.Flags().StringVar(&archiveDir, "archive", "", "before compaction reclaims the rule's events, write them to this directory (gzip NDJSON)")
	cmd.Flags().StringVar(&maxBytes, "max-bytes", "", "store-wide: remove the oldest segments while the log is larger (500MB, 10GiB)")
	return cmd
}

func newRetentionLsCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the retention rules",
		Long: `List the retention rules, one per selection, and the store-wide size
limit and automatic compaction (evt compact --auto) as the row of
selection (store). -o json prints
{"selection","max_age","max_count","until_acked","max_bytes","auto_compact"}
per line; max_age in seconds. When a rule has --archive, every row has
one more field, "archive" (its directory, or - / "").`,
		Example: `  evt retention ls
  evt retention ls -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			s, err := g.openStore(false)
			if err != nil {
				return err
			}
			defer s.Close()
			r, err := s.Retention()
			if err != nil {
				return err
			}
			archives := false
			for _, rule := range r.Rules {
				archives = archives || rule.Archive != ""
			}
			for _, rule := range r.Rules {
				row := retentionRow(rule.Selection, rule.MaxAge, rule.MaxCount, rule.UntilAcked, 0, false)
				if err := p.Row(withArchive(row, archives, rule.Archive)); err != nil {
					return err
				}
			}
			if r.MaxBytes > 0 || r.AutoCompact {
				row := retentionRow("(store)", 0, 0, false, r.MaxBytes, r.AutoCompact)
				if err := p.Row(withArchive(row, archives, "")); err != nil {
					return err
				}
			}
			return p.Flush()
		},
	}
}

func retentionRow(sel string, age time.Duration, count uint64, untilAcked bool, maxBytes int64, auto bool) []output.Field {
	ageText, countText, bytesText, ackedText := "-", "-", "-", "-"
	if age > 0 {
		ageText = codec.FormatDuration(age)
	}
	if count > 0 {
		countText = strconv.FormatUint(count, 10)
	}
	if maxBytes > 0 {
		bytesText = humanBytes(maxBytes)
	}
	if untilAcked {
		ackedText = "yes"
	}
	autoText := "-"
	if auto {
		autoText = "on"
	}
	return []output.Field{
		{Key: "selection", Value: sel},
		{Key: "max_age", Value: uint64(age / time.Second), Text: ageText},
		{Key: "max_count", Value: count, Text: countText},
		{Key: "until_acked", Value: untilAcked, Text: ackedText},
		{Key: "max_bytes", Value: uint64(maxBytes), Text: bytesText},
		{Key: "auto_compact", Value: auto, Text: autoText},
	}
}

// withArchive adds the archive column when some rule has one: without
// archives, the rows are what they were before archives existed.
func withArchive(row []output.Field, archives bool, dir string) []output.Field {
	if !archives {
		return row
	}
	text := dir
	if text == "" {
		text = "-"
	}
	return append(row, output.Field{Key: "archive", Value: dir, Text: text})
}

func newRetentionRmCmd(g *globalOptions) *cobra.Command {
	var maxBytes bool
	cmd := &cobra.Command{
		Use:   "rm SELECTION | --max-bytes",
		Short: "Remove a retention rule, or the store's size limit",
		Long: `Remove the rule of SELECTION (as listed by evt retention ls), or with
--max-bytes the store-wide size limit. Events a limit removed come back
only if evt compact has not reclaimed them yet.`,
		Example: `  evt retention rm --max-bytes
  evt retention rm 'order-*'   # no such rule yet: exit 4`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !maxBytes {
				return usageErrorf("retention rm: give a SELECTION or --max-bytes")
			}
			sel := ""
			if len(args) == 1 {
				parsed, err := codec.ParseSelection(args[0])
				if err != nil {
					return usageErrorf("%w", err)
				}
				sel = parsed.String()
			}
			s, err := openExisting(g)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.UpdateRetention(func(r *log.Retention) error {
				if sel != "" {
					n := len(r.Rules)
					if r.Rules = removeRule(r.Rules, sel); len(r.Rules) == n {
						return fmt.Errorf("%w: no retention rule for %s", log.ErrNotFound, sel)
					}
				}
				if maxBytes {
					r.MaxBytes = 0
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&maxBytes, "max-bytes", false, "remove the store-wide size limit")
	return cmd
}

func removeRule(rules []log.Rule, sel string) []log.Rule {
	out := rules[:0]
	for _, r := range rules {
		if r.Selection != sel {
			out = append(out, r)
		}
	}
	return out
}

// parseSize reads a size in bytes: 1000000, 500MB, 64MiB, 10G.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) && len(s) > len(u.suffix) {
			num, mult = s[:len(s)-len(u.suffix)], u.n
			break
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	// !(size >= 1) also refuses NaN, which compares false with anything
	// (FuzzParseSize found "nan" read as a negative size, and "0.5B" as 0,
	// which is no limit at all).
	size := n * float64(mult)
	if err != nil || !(size >= 1) || size > 1<<62 {
		return 0, fmt.Errorf("%q: want a size like 500MB or 10GiB", s)
	}
	return int64(size), nil
}
