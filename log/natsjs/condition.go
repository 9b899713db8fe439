package natsjs

import (
	"context"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/evtdev/evt/log"
)

// condFilter is the subject filter a condition's queries are checked on:
// one stream's subject, one category's ROOT.*.CAT.>, or the whole log.
type condFilter struct {
	subject string
	stream  string // the one stream of a literal subject, else ""
	queries []log.ConditionQuery
	bound   uint64 // the filter's last message the check covers
}

// condFilters groups the condition's queries by the filter that holds
// every event they can match, and says whether the whole log's check
// (Nats-Expected-Last-Sequence) is needed to keep it atomic: a query of
// every stream (or a glob that fixes no category) has no narrower
// filter, and on a clustered server a wildcard filter's check is not
// atomic. There the server refuses a message whose subject has a
// proposal in flight only by the literal subject, so a message of
// course-7 proposed but not yet applied is invisible to a check of
// ROOT.*.course.> (nats-server 2.15.3, jetstream_batching.go); a literal
// subject's check, like --expect's, sees it.
func (s *Store) condFilters(c *log.Condition) ([]*condFilter, bool) {
	var fs []*condFilter
	global := false
	clustered := s.replicas > 1 || s.nc.ConnectedClusterName() != ""
	for _, q := range c.Queries {
		f := &condFilter{subject: s.filterOf(q.Selection)}
		if name, ok := q.Selection.Stream(); ok {
			f.stream = name
		} else if f.subject == s.root+".>" || clustered {
			global = true
		}
		if i := slices.IndexFunc(fs, func(g *condFilter) bool { return g.subject == f.subject }); i >= 0 {
			fs[i].queries = append(fs[i].queries, q)
			continue
		}
		f.queries = []log.ConditionQuery{q}
		fs = append(fs, f)
	}
	return fs, global
}

// checkCondition looks for an event a query of the condition matches
// after c.After, in each filter up to its bound: the append's checks
// (each filter's last message is still its bound, or the log's last
// message is still the bound of all) make the look atomic with the
// commit. The first match by position is the conflict.
//
// A delete or truncate since After may have purged events after it
// (a nats store purges at once): its marker still says the last event's
// position and type, so a query without types, or with that type,
// matches it; when events before the last one may have been purged and
// the query names other types, evt cannot tell whether one matched and
// refuses the append with a conflict, which a writer resolves by reading
// again (its new read is after the marker).
func (s *Store) checkCondition(ctx context.Context, c *log.Condition, filters []*condFilter) error {
	var found *log.MatchError
	var unsure error
	for _, f := range filters {
		end := f.bound
		if found != nil && found.Position-1 < end {
			end = found.Position - 1 // only an earlier match can be first
		}
		if end <= c.After {
			continue
		}
		// The versions seen of each stream, with their previous event's
		// position: the purged events of a partial truncate end just
		// before the first event past its cut.
		prevOf := map[string]map[uint64]uint64{}
		err := s.scanRange(ctx, f.subject, c.After+1, end, true, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
			e, ok := s.decode(m.Subject(), meta.Sequence.Stream, m.Headers(), nil, meta.Timestamp)
			if !ok {
				return true, nil
			}
			if e.mark == "" {
				for _, q := range f.queries {
					if q.Matches(e.stream, e.typ) {
						found = &log.MatchError{Query: q, After: c.After, Position: e.seq, Stream: e.stream, Type: e.typ}
						return false, nil
					}
				}
				if prevOf[e.stream] == nil {
					prevOf[e.stream] = map[uint64]uint64{}
				}
				prevOf[e.stream][e.version] = e.prev
				return true, nil
			}
			// A marker: were events of its stream after After purged?
			lastCut := e.lastPos // the position of the last version cut
			if e.version > e.cut {
				prev, seen := prevOf[e.stream][e.cut+1]
				if !seen {
					return true, nil // the first event past the cut is at or before After
				}
				lastCut = prev
			}
			if lastCut <= c.After {
				return true, nil
			}
			for _, q := range f.queries {
				if !q.Selection.Match(e.stream) {
					continue
				}
				if lastCut == e.lastPos && q.Matches(e.stream, e.lastType) {
					found = &log.MatchError{Query: q, After: c.After, Position: e.lastPos, Stream: e.stream, Type: e.lastType}
					return false, nil
				}
				if unsure == nil {
					unsure = fmt.Errorf("%w: events of %s after position %d were cut off by the %s at %d before the check, so whether one matches --fail-if-match %s is not known (read again and retry)", log.ErrConflict, e.stream, c.After, e.mark, e.seq, q)
				}
			}
			return true, nil
		})
		if err != nil {
			return s.wrap("check --fail-if-match", err)
		}
	}
	if found != nil {
		return found
	}
	return unsure
}
