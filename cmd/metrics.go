package cmd

import (
	"time"

	"github.com/evtdev/evt/cmd/output"
	"github.com/evtdev/evt/log"
)

// The metrics of -o prometheus. Names follow Prometheus's conventions:
// evt_ first, the unit last (_events, _bytes, _seconds), times as unix
// seconds in _timestamp_seconds. Every one is a gauge: retention, a
// group reset or a compaction can make any of them go down.

// groupMetrics is group ls as metrics: one sample per group of each
// figure, labelled group="NAME".
type groupMetrics struct {
	families []output.MetricFamily
}

func newGroupMetrics() *groupMetrics {
	fam := func(name, help string) output.MetricFamily {
		return output.MetricFamily{Name: name, Help: help, Type: "gauge"}
	}
	return &groupMetrics{families: []output.MetricFamily{
		fam("evt_group_position", "The group's committed position: every selected event before it is done."),
		fam("evt_group_lag_events", "Selected events the group has not done yet, leased ones included."),
		fam("evt_group_lag_seconds", "How long ago the oldest event the group has not done was appended (0 without lag)."),
		fam("evt_group_pending_events", "Events leased to the group's members now."),
		fam("evt_group_parked_events", "Events the group gave up on (parked)."),
		fam("evt_group_members", "Live members of the group."),
	}}
}

// add adds one group's figures; now is the time lag_seconds counts to.
func (m *groupMetrics) add(name string, st log.GroupStatus, now time.Time) {
	lag := 0.0
	if !st.Oldest.IsZero() {
		lag = max(now.Sub(st.Oldest).Seconds(), 0)
	}
	labels := []output.Label{{Name: "group", Value: name}}
	for i, v := range []float64{float64(st.Committed), float64(st.Lag), lag, float64(st.Leased), float64(st.Parked), float64(len(st.Members))} {
		m.families[i].Samples = append(m.families[i].Samples, output.Sample{Labels: labels, Value: v})
	}
}

// statsMetrics is evt stats as metrics, labelled selection="SELECTION"
// ("*" for every stream), but for the store directory's bytes and
// segments, which no selection changes.
func statsMetrics(st *storeStats) []output.MetricFamily {
	labels := []output.Label{{Name: "selection", Value: st.selection}}
	fam := func(name, help string, v float64) output.MetricFamily {
		return output.MetricFamily{Name: name, Help: help, Type: "gauge", Samples: []output.Sample{{Labels: labels, Value: v}}}
	}
	// The store's own figures have no selection.
	store := func(name, help string, v float64) output.MetricFamily {
		return output.MetricFamily{Name: name, Help: help, Type: "gauge", Samples: []output.Sample{{Value: v}}}
	}
	last, first := 0.0, 0.0
	if st.events > 0 {
		last = float64(st.newest) / 1e9
		first = float64(st.oldest) / 1e9
	}
	fams := []output.MetricFamily{
		fam("evt_events", "Retained events of the selection.", float64(st.events)),
		fam("evt_streams", "Streams of the selection with retained events.", float64(len(st.streams.names))),
		fam("evt_event_bytes", "Bytes of the selection's event records.", float64(st.eventBytes)),
		store("evt_store_bytes", "Bytes the store keeps: every file of its directory, or what the nats server stores.", float64(st.bytes)),
	}
	// A nats store has no segment files: no sample rather than a 0 that
	// would read as an empty store.
	if st.segments >= 0 {
		fams = append(fams, store("evt_store_segments", "Segment files of the store.", float64(st.segments)))
	}
	return append(fams,
		fam("evt_last_position", "Position of the selection's last event (0: none).", float64(st.last)),
		fam("evt_last_append_timestamp_seconds", "When the selection's last event was appended, in unix seconds (0: none).", last),
		fam("evt_first_append_timestamp_seconds", "When the selection's first retained event was appended, in unix seconds (0: none).", first),
	)
}
