package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/log"
)

func newVerifyCmd(g *globalOptions) *cobra.Command {
	var chain bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every record and every derived file of the store",
		Long: `Read the whole store and check it: every record's checksum, dense
positions and versions, back-pointers, times, batch ends, and every derived
file (offsets, heads table, id index) against the segments. It never
blocks appends (it only waits for a running evt compact to finish) and
changes nothing. The first problem is reported by file and byte
offset, and evt exits 1.

--chain also checks the hash chain (DIR/chain): every sealed segment must
hash to its line, or it was changed outside evt. Segments sealed since the
last run are added to the chain (the one file verify writes), and the
chain's head is printed: note it somewhere else, and a later head that
does not follow from it means the history was rewritten. Compaction, the
one legitimate rewrite of a sealed segment, updates the chain.`,
		Example: `  evt verify
  evt verify -o json
  evt verify --chain`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.printer()
			if err != nil {
				return err
			}
			s, err := g.openUnrecovered()
			if err != nil {
				return err
			}
			defer s.Close()
			v, ok := s.(log.Verifier)
			if !ok {
				return unsupportedBy(s, "verify")
			}
			bar := newProgress(g.IO, "verify")
			rep, err := v.Verify(cmd.Context(), bar.update)
			bar.done()
			if err != nil {
				return err
			}
			if chain {
				cv, ok := s.(log.ChainVerifier)
				if !ok {
					return unsupportedBy(s, "verify --chain")
				}
				head, added, err := cv.VerifyChain()
				if err != nil {
					return err
				}
				rep.Chain = head
				if added > 0 {
					rep.Notes = append(rep.Notes, fmt.Sprintf("hash chain: %d sealed segments added", added))
				}
			}
			return printReport(g, p, "ok", rep)
		},
	}
	cmd.Flags().BoolVar(&chain, "chain", false, "also check sealed segments against the hash chain, extend it, print its head")
	return cmd
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
			s, err := openExisting(g)
			if err != nil {
				return err
			}
			defer s.Close()
			bar := newProgress(g.IO, "repair")
			r, ok := s.(log.Repairer)
			if !ok {
				bar.done()
				return unsupportedBy(s, "repair")
			}
			rep, err := r.Repair(cmd.Context(), dropDamaged, bar.update)
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
func printReport(g *globalOptions, p *output.Printer, verdict string, rep log.Report) error {
	for _, n := range rep.Notes {
		fmt.Fprintln(g.IO.ErrOut, "note: "+n)
	}
	if p.Format() == output.FormatAuto {
		for _, a := range rep.Actions {
			fmt.Fprintln(g.IO.Out, a)
		}
		if _, err := fmt.Fprintf(g.IO.Out, "%s: %d events in %d streams, %d segments, %s\n", verdict, rep.Events, rep.Streams, rep.Segments, humanBytes(rep.Bytes)); err != nil {
			return err
		}
		if rep.Chain != "" {
			_, err := fmt.Fprintf(g.IO.Out, "chain: %s\n", rep.Chain)
			return err
		}
		return nil
	}
	actions := rep.Actions
	if actions == nil {
		actions = []string{}
	}
	fields := []output.Field{
		{Key: "result", Value: verdict},
		{Key: "events", Value: rep.Events},
		{Key: "streams", Value: rep.Streams},
		{Key: "segments", Value: rep.Segments},
		{Key: "bytes", Value: uint64(rep.Bytes)},
		{Key: "actions", Value: actions, Text: strings.Join(actions, "; ")},
		{Key: "notes", Value: append([]string{}, rep.Notes...), Text: strings.Join(rep.Notes, "; ")},
	}
	if rep.Chain != "" {
		fields = append(fields, output.Field{Key: "chain", Value: rep.Chain})
	}
	err := p.Row(fields)
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
