package cmd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/evtdev/evt/codec"
	"github.com/evtdev/evt/log"
)

// Completing names on a big store. A store of a million streams cannot
// offer them all: bash asks before listing a hundred, zsh and fish slow
// to a crawl, and reading every head takes seconds. So a completion
// offers at most maxCandidates names, chosen the way git completes a path
// one directory at a time:
//
//  1. every stream that starts with what is typed, if there are few;
//  2. else one entry per next segment of the names, up to and including
//     the next "-" ("acc" → "account-", "audit-"), or the whole name when
//     a segment holds one stream;
//  3. else one entry per next character ("account-" → "account-1" …
//     "account-9").
//
// Entries of steps 2 and 3 are prefixes the user types on from, so the
// shell adds no space after them. Each step is a handful of lookups in
// the store's name index (log.StreamNamer), so a completion costs the
// same in any store; a store without the index is listed once instead.
const maxCandidates = 64

// listNames returns up to limit names, in byte order, starting with
// prefix and at or after from: log.StreamNamer's contract.
type listNames func(prefix, from string, limit int) ([]string, error)

// streamNames lists the stream names of s from its name index, or, when
// it has none, from one listing of the heads (Streams) held in memory.
func streamNames(s log.Store) listNames {
	var all []string // the fallback's listing, once loaded
	loaded := false
	namer, _ := s.(log.StreamNamer)
	return func(prefix, from string, limit int) ([]string, error) {
		if namer != nil {
			names, err := namer.StreamNames(prefix, from, limit)
			if !errors.Is(err, log.ErrUnsupported) {
				return names, err
			}
			namer = nil
		}
		if !loaded {
			infos, err := s.Streams(func(name string) bool { return strings.HasPrefix(name, prefix) })
			if err != nil {
				return nil, err
			}
			for _, info := range infos {
				all = append(all, info.Stream)
			}
			loaded = true
		}
		from = max(from, prefix)
		i, _ := slices.BinarySearch(all, from)
		var out []string
		for ; i < len(all) && len(out) < limit && strings.HasPrefix(all[i], prefix); i++ {
			out = append(out, all[i])
		}
		return out, nil
	}
}

// boundedNames returns at most maxCandidates completions of prefix
// (see maxCandidates for the steps) and whether they are prefixes to
// type on from rather than whole names.
func boundedNames(list listNames, prefix string) (out []string, partial bool, err error) {
	names, err := list(prefix, prefix, maxCandidates+1)
	if err != nil || len(names) <= maxCandidates {
		return names, false, err
	}
	// Step 2: one entry per next segment.
	for from := prefix; len(out) <= maxCandidates; {
		next, err := list(prefix, from, 1)
		if err != nil {
			return nil, false, err
		}
		if len(next) == 0 {
			return out, true, nil
		}
		name := next[0]
		i := strings.IndexByte(name[len(prefix):], '-')
		if i < 0 {
			out = append(out, name)
			from = name + "\x00"
			continue
		}
		seg := name[:len(prefix)+i+1]
		inSeg, err := list(seg, seg, 2)
		if err != nil {
			return nil, false, err
		}
		if len(inSeg) == 1 {
			out = append(out, inSeg[0])
		} else {
			out = append(out, seg)
		}
		from = seg[:len(seg)-1] + "." // "." follows "-": past every name in seg
	}
	// Step 3: one entry per next character.
	out = out[:0]
	for from := prefix; len(out) < maxCandidates; {
		next, err := list(prefix, from, 1)
		if err != nil {
			return nil, false, err
		}
		if len(next) == 0 {
			break
		}
		name := next[0]
		_, size := utf8.DecodeRuneInString(name[len(prefix):])
		if size == 0 { // prefix itself is a stream
			out = append(out, name)
			from = name + "\x00"
			continue
		}
		cand := name[:len(prefix)+size]
		out = append(out, cand)
		last := cand[len(cand)-1]
		if last == 0xff {
			break // not UTF-8; nothing sorts after it that this could skip to
		}
		from = cand[:len(cand)-1] + string([]byte{last + 1})
	}
	return out, true, nil
}

// streamCompletions completes toComplete to stream names of s: whole
// names described by their version and last type (and checked to still
// exist), or prefixes to type on from.
func streamCompletions(s log.Store, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective, error) {
	names, partial, err := boundedNames(streamNames(s), toComplete)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp, err
	}
	if partial {
		return names, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace, nil
	}
	out := make([]cobra.Completion, 0, len(names))
	for _, name := range names {
		info, err := s.Head(name)
		if errors.Is(err, log.ErrNotFound) {
			continue // the index names streams that no longer have events
		}
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp, err
		}
		out = append(out, cobra.CompletionWithDesc(name, fmt.Sprintf("version %d, last %s", info.Version, info.LastType)))
	}
	return out, cobra.ShellCompDirectiveNoFileComp, nil
}

// typesScanned is how many of the newest events type completion reads.
const typesScanned = 10000

// typeCompletions completes event types: those of the newest
// typesScanned events of the log. A type only older events have is
// missed; finding it would mean reading the whole log, or every head.
func typeCompletions(ctx context.Context, s log.Store, toComplete string) ([]cobra.Completion, error) {
	all, _ := codec.ParseSelection("") // cannot fail: "" is every stream
	first, next, err := s.Bounds()
	if err != nil {
		return nil, err
	}
	from := first
	if next > first+typesScanned {
		from = next - typesScanned // positions, not -N: no scan back for the selection
	}
	seen := map[string]bool{}
	q := log.Query{Selection: all, From: codec.Cursor{Kind: codec.CursorPosition, N: from}}
	for rec, err := range s.Read(ctx, q) {
		if err != nil {
			return nil, err
		}
		if t := string(rec.Type); !seen[t] && strings.HasPrefix(t, toComplete) {
			seen[t] = true
		}
	}
	out := make([]cobra.Completion, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.Sort(out)
	return out, nil
}
