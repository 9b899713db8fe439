package local

import (
	"context"
	"fmt"
	"testing"

	"github.com/evtdev/evt/log"
)

// BenchmarkConditionalAppend is one append with a condition across
// streams (evt append --fail-if-match … --after P), in a store of 10
// events and of a million: the check must cost the same in both (it
// reads the events after P that could match, never the log). "plain" is
// the same append without a condition; "streams" checks two streams, one
// with types, nothing after P; "glob-behind-100" checks a glob with P 100
// events behind the end, so the check scans those 100 events.
func BenchmarkConditionalAppend(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		dir := b.TempDir()
		fillStore(b, dir, n)
		s, err := Open(dir, Options{Create: true, Sync: SyncNone})
		if err != nil {
			b.Fatal(err)
		}
		data := []byte(`{"amount":1}`)
		parse := func(q string) log.ConditionQuery {
			cq, err := log.ParseConditionQuery(q)
			if err != nil {
				b.Fatal(err)
			}
			return cq
		}
		for _, tc := range []struct {
			name    string
			queries []log.ConditionQuery
			behind  uint64
		}{
			{"plain", nil, 0},
			{"streams", []log.ConditionQuery{parse("account-1:Deposited,Withdrawn"), parse("account-2")}, 0},
			{"glob-behind-100", []log.ConditionQuery{parse("course-*")}, 100},
		} {
			b.Run(fmt.Sprintf("stored=%d/%s", n, tc.name), func(b *testing.B) {
				for b.Loop() {
					_, next, err := s.Bounds()
					if err != nil {
						b.Fatal(err)
					}
					var batch log.Batch
					batch.Add("account-1", "Deposited", "", data, nil)
					if tc.queries != nil {
						batch.FailIfMatch(log.Condition{Queries: tc.queries, After: next - 1 - min(tc.behind, next-1)})
					}
					if _, err := s.Append(context.Background(), &batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		s.Close()
	}
}
