package log

import (
	"fmt"
	"slices"
	"strings"

	"github.com/evtdev/evt/codec"
)

// Condition makes an append conditional on the log across streams (a
// dynamic consistency boundary, `evt append --fail-if-match Q --after P`):
// the batch is stored only if no event that any of Queries matches has a
// position after After.
//
// Every store that accepts a condition checks it atomically with the
// append: no event can be stored between the check and the batch, so
// two writers that read the same events and decided on them cannot both
// succeed when either's events match the other's condition. A failed
// check fails the whole batch with an error wrapping ErrConflict and
// stores nothing. A store that cannot check a condition atomically
// refuses the batch with an error wrapping ErrUnsupported; it never
// ignores one.
//
// What matches: an event (a delete or truncate marker is not one) stored
// at a position after After, in a stream a query's Selection picks, of
// one of its Types (any type when Types is empty). An event counts even
// if a cut or a retention rule hides it by the time of the check: the
// condition asks what was appended since the read the decision was made
// on, not what a read would show now. The batch's own events are not
// part of the log the condition is checked against.
//
// A batch whose every event its streams already hold (a retry of an
// append that succeeded, by ids) stores nothing and is not checked, as
// with expectations: the retry reports the original events.
type Condition struct {
	// Queries: the batch fails if any of them matches. None: no check.
	Queries []ConditionQuery
	// After is the last position the decision's read saw (the log's last
	// position when it saw nothing).
	After uint64
}

// ConditionQuery is one query of a Condition: the events of the streams
// Selection picks, of one of Types (empty: every type).
type ConditionQuery struct {
	Selection codec.Selection
	Types     []string
}

// ParseConditionQuery reads a QUERY of --fail-if-match:
// SELECTION[:TYPE[,TYPE…]]. The last ':' starts the types, so a stream
// name that holds ':' is written with a ':' after it (`a:b:` is stream
// a:b, any type).
func ParseConditionQuery(s string) (ConditionQuery, error) {
	sel, types := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		sel, types = s[:i], s[i+1:]
	}
	selection, err := codec.ParseSelection(sel)
	if err != nil {
		return ConditionQuery{}, err
	}
	q := ConditionQuery{Selection: selection}
	if types != "" {
		for t := range strings.SplitSeq(types, ",") {
			if err := codec.ValidateType(t); err != nil {
				return ConditionQuery{}, fmt.Errorf("query %q: %w", s, err)
			}
			if !slices.Contains(q.Types, t) {
				q.Types = append(q.Types, t)
			}
		}
	}
	return q, nil
}

// Matches reports whether an event of stream and typ is one q selects.
func (q ConditionQuery) Matches(stream, typ string) bool {
	if len(q.Types) > 0 && !slices.Contains(q.Types, typ) {
		return false
	}
	return q.Selection.Match(stream)
}

// String is the query as --fail-if-match takes it.
func (q ConditionQuery) String() string {
	if len(q.Types) == 0 {
		if strings.Contains(q.Selection.String(), ":") {
			return q.Selection.String() + ":"
		}
		return q.Selection.String()
	}
	return q.Selection.String() + ":" + strings.Join(q.Types, ",")
}

// MatchError is the conflict of a failed Condition: the first event found
// that a query matches. It wraps ErrConflict.
type MatchError struct {
	Query    ConditionQuery
	After    uint64
	Position uint64
	Stream   string
	Type     string
}

func (e *MatchError) Error() string {
	return fmt.Sprintf("%s: event %d (%s, %s) matches --fail-if-match %s, after position %d",
		ErrConflict, e.Position, e.Stream, e.Type, e.Query, e.After)
}

// Unwrap lets errors.Is(err, ErrConflict) match.
func (e *MatchError) Unwrap() error { return ErrConflict }

// FailIfMatch makes the batch conditional (see Condition); a later call
// replaces the condition. A condition with no queries checks nothing.
func (b *Batch) FailIfMatch(c Condition) {
	if len(c.Queries) == 0 {
		b.cond = nil
		return
	}
	b.cond = &c
}

// Condition returns the batch's condition, or nil when it has none.
func (b *Batch) Condition() *Condition { return b.cond }
