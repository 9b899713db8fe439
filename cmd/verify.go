package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

func newVerifyCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check every record and every derived file of the store",
		Long: `Read the whole store and check it: every record's checksum, dense
positions and versions, back-pointers, times, batch ends, and every derived
file (offsets, heads table, id index) against the segments. It takes no
lock and changes nothing. The first problem is reported by file and byte
offset, and evt exits 1.`,
		Example: `  evt verify
  evt verify -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			dir := g.StoreDir()
			if !log.Exists(dir) {
				return errNoStore(dir)
			}
			// NoRecover: verify reports a missing or stale derived file
			// instead of letting the open quietly rebuild it.
			s, err := log.Open(dir, log.Options{NoRecover: true})
			if err != nil {
				return err
			}
			defer s.Close()
			bar := newProgress(g.IO, "verify")
			rep, err := s.Verify(bar.update)
			bar.done()
			if err != nil {
				return err
			}
			return printReport(g, p, "ok", rep)
		},
	}
}

func newRepairCmd(g *globalOptions) *cobra.Command {
	var dropDamaged bool
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Rebuild every derived file from the segments",
		Long: `Rebuild the offsets of every segment, the heads table, the id index and
the commit file from the segments, under the append lock. An unfinished
batch at the end of the log (never acknowledged) is dropped. Damage inside
the log cannot be repaired without losing events: repair says where it is
and changes nothing, unless --drop-damaged allows it to cut the active
segment at the damage.`,
		Example: `  evt repair
  evt verify || evt repair`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			dir := g.StoreDir()
			if !log.Exists(dir) {
				return errNoStore(dir)
			}
			s, err := g.openStore(true)
			if err != nil {
				return err
			}
			defer s.Close()
			bar := newProgress(g.IO, "repair")
			rep, err := s.Repair(dropDamaged, bar.update)
			bar.done()
			if err != nil {
				return err
			}
			return printReport(g, p, "repaired", rep)
		},
	}
	cmd.Flags().BoolVar(&dropDamaged, "drop-damaged", false, "cut the active segment at damage, dropping the events from there on")
	return cmd
}

// printReport prints what verify or repair did: a line per action and a
// summary line, or with -o one object with the same facts.
func printReport(g *globalOptions, p *codec.Printer, verdict string, rep log.Report) error {
	for _, n := range rep.Notes {
		fmt.Fprintln(g.IO.ErrOut, "note: "+n)
	}
	if p.Format() == codec.FormatAuto {
		for _, a := range rep.Actions {
			fmt.Fprintln(g.IO.Out, a)
		}
		_, err := fmt.Fprintf(g.IO.Out, "%s: %d events in %d streams, %d segments, %s\n", verdict, rep.Events, rep.Streams, rep.Segments, humanBytes(rep.Bytes))
		return err
	}
	actions := rep.Actions
	if actions == nil {
		actions = []string{}
	}
	err := p.Row([]codec.Field{
		{Key: "result", Value: verdict},
		{Key: "events", Value: rep.Events},
		{Key: "streams", Value: rep.Streams},
		{Key: "segments", Value: rep.Segments},
		{Key: "bytes", Value: uint64(rep.Bytes)},
		{Key: "actions", Value: actions, Text: strings.Join(actions, "; ")},
		{Key: "notes", Value: append([]string{}, rep.Notes...), Text: strings.Join(rep.Notes, "; ")},
	})
	if err != nil {
		return err
	}
	return p.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progress draws a one-line bar on stderr, only when stderr is a terminal.
type progress struct {
	ios   *IOStreams
	label string
	shown bool
}

func newProgress(ios *IOStreams, label string) *progress { return &progress{ios: ios, label: label} }

func (p *progress) update(done, total int64) {
	if !p.ios.IsStderrTTY() || total <= 0 {
		return
	}
	const width = 30
	n := int(done * width / total)
	fmt.Fprintf(p.ios.ErrOut, "\r%s [%s%s] %3d%%", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n), done*100/total)
	p.shown = true
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprint(p.ios.ErrOut, "\r\033[K")
	}
}
