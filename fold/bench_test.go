package fold

import (
	"strconv"
	"testing"
	"time"
)

// benchData is one event's data as the benchmark data set has it
// (../shared/bench, tools/cmd/gen): 200-byte lines, a 130-byte data.
// codec's BenchmarkDecodeJSON decodes the same.
const benchData = `{"amount":5688,"note":"utilities gift refund interest invoice travel rent bonus interest rent transfer salary utilities interest invoice groceri"}`

const benchReduce = `(. // 0) + (if $event.type == "Withdrawn" then -$event.data.amount else $event.data.amount end)`

func benchInput() *Input {
	return &Input{
		Position: 123456,
		Stream:   "account-4242",
		Version:  7,
		Type:     "Deposited",
		Time:     time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC),
		ID:       "01JDX5V6W7Q8R9S0T1U2V3W4X5",
		Data:     []byte(benchData),
	}
}

// BenchmarkMergeStep is one step of the default reducer on an entity's
// existing state: decode the data, merge it in.
func BenchmarkMergeStep(b *testing.B) {
	r := NewMerge()
	ev := benchInput()
	state, _ := r.Step(nil, ev)
	b.SetBytes(int64(len(ev.Data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if state, err = r.Step(state, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJQStep is one step of the --reduce expression of compare.sh.
func BenchmarkJQStep(b *testing.B) {
	r, err := NewJQ(benchReduce)
	if err != nil {
		b.Fatal(err)
	}
	ev := benchInput()
	var state any
	b.SetBytes(int64(len(ev.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if state, err = r.Step(state, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// benchFold folds events spread over 100k entities, as `evt fold
// 'account-*'` does on the benchmark data set: one state per stream in a
// map, entities visited in a pseudo-random order (so states are cold in
// the cache), 65% Deposited, 30% Withdrawn, 5% Opened. b.N is the number
// of events; the figure to compare with the targets is events/s = 1e9 /
// (ns/op).
func benchFold(b *testing.B, r Reducer) {
	const entities = 100_000
	const distinct = 1 << 12 // distinct event bodies, reused
	evs := make([]Input, distinct)
	rng := uint64(20240601)
	next := func() uint64 {
		rng += 0x9e3779b97f4a7c15
		z := rng
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	for i := range evs {
		typ := "Withdrawn"
		switch p := next() % 100; {
		case p < 5:
			typ = "Opened"
		case p < 65:
			typ = "Deposited"
		}
		amount := strconv.FormatUint(1+next()%10000, 10)
		data := `{"amount":` + amount + `,"note":"utilities gift refund interest invoice travel rent bonus interest rent transfer salary utilities interest invoice groceri"}`
		evs[i] = Input{Type: typ, Time: time.Unix(1764064800, 0), ID: "01JDX5V6W7Q8R9S0T1U2V3W4X5", Data: []byte(data)}
	}
	streams := make([]string, entities)
	for i := range streams {
		streams[i] = "account-" + strconv.Itoa(i)
	}
	states := make(map[string]any, entities)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := &evs[i%distinct]
		k := next() % entities
		ev.Stream, ev.Position, ev.Version = streams[k], uint64(i+1), uint64(i/entities+1)
		s, ok := states[ev.Stream]
		if !ok {
			s, _ = r.Init()
		}
		s, err := r.Step(s, ev)
		if err != nil {
			b.Fatal(err)
		}
		states[ev.Stream] = s
		i++
	}
}

func BenchmarkFoldMerge100k(b *testing.B) { benchFold(b, NewMerge()) }

func BenchmarkFoldJQ100k(b *testing.B) {
	r, err := NewJQ(benchReduce)
	if err != nil {
		b.Fatal(err)
	}
	benchFold(b, r)
}
