package cmd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

func newGroupLsCmd(g *globalOptions) *cobra.Command {
	var failIfLag string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List groups: position, lag, pending, parked, live members",
		Example: `  evt group ls
  evt group ls --fail-if-lag 5m    # cron: exit 1 when a group is 5 min behind
  evt group ls -o json
  d=/var/lib/node_exporter/textfile
  evt group ls -o prometheus > $d/evt_groups.prom.$$ &&
    mv $d/evt_groups.prom.$$ $d/evt_groups.prom`,
		Long: `List the consumer groups: committed position, lag (selected events not yet
handled, and how long ago the oldest of them was appended),
events leased to members, parked events and live members.

--fail-if-lag 5m (a duration) or 1000 (a count) exits 1 when any group
is that far behind: for cron jobs and health checks.

-o prometheus prints the same figures as metrics in Prometheus's text
format, one sample per group labelled group="NAME": evt_group_position,
evt_group_lag_events, evt_group_lag_seconds, evt_group_pending_events,
evt_group_parked_events, evt_group_members (for node_exporter's textfile
collector: write a temporary file and rename it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var maxCount uint64
			var maxAge time.Duration
			if failIfLag != "" {
				if n, err := strconv.ParseUint(failIfLag, 10, 64); err == nil {
					maxCount = n
				} else if errors.Is(err, strconv.ErrRange) {
					return usageErrorf("--fail-if-lag: %s is too large (at most %d)", failIfLag, uint64(math.MaxUint64))
				} else if d, err := codec.ParseDuration(failIfLag); err == nil {
					maxAge = d
				} else if de := (*codec.DurationError)(nil); errors.As(err, &de) && de.TooLarge {
					return usageErrorf("--fail-if-lag: %w", err)
				} else {
					return usageErrorf("--fail-if-lag: want a count or a duration, not %q", failIfLag)
				}
			}
			p, err := g.metricsPrinter()
			if err != nil {
				return err
			}
			p.SetEmpty("No groups.")
			var metrics *groupMetrics
			if p.Format() == output.FormatPrometheus {
				metrics = newGroupMetrics()
			}
			s, err := g.openStore(false)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			names, err := s.Groups(ctx)
			if err != nil {
				return err
			}
			var behind []string
			for _, name := range names {
				row, st, err := openGroupRow(ctx, s, name)
				if errors.Is(err, log.ErrNotFound) {
					continue // removed since the listing
				}
				if err != nil {
					return err
				}
				if metrics != nil {
					metrics.add(name, st, time.Now())
				} else if err := p.Row(row); err != nil {
					return err
				}
				lagTime := time.Duration(0)
				if !st.Oldest.IsZero() {
					lagTime = time.Since(st.Oldest)
				}
				if failIfLag != "" && (maxAge == 0 && st.Lag > maxCount || maxAge > 0 && lagTime > maxAge) {
					behind = append(behind, name)
				}
			}
			if metrics != nil {
				err = output.WriteMetrics(g.IO.Out, metrics.families)
			} else {
				err = p.Flush()
			}
			if err != nil {
				return err
			}
			if len(behind) > 0 {
				return fmt.Errorf("groups behind by more than %s: %v", failIfLag, behind)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&failIfLag, "fail-if-lag", "", "exit 1 if a group lags more than this count or duration")
	return cmd
}

// openGroupRow is groupRow of the group name.
func openGroupRow(ctx context.Context, s log.Store, name string) ([]output.Field, log.GroupStatus, error) {
	grp, err := s.OpenGroup(ctx, name)
	if err != nil {
		return nil, log.GroupStatus{}, err
	}
	defer grp.Close()
	return groupRow(ctx, grp)
}
