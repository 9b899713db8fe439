// natscompare is the NATS JetStream side of run.sh: a client that does to a
// running nats-server what the evt commands do to a store, on the same
// NDJSON events (the output of ../shared/bench/tools/cmd/gen).
//
//	natscompare ping    -url URL
//	natscompare bulk    -url URL -file events.ndjson [-n MAX] [-window 4000]
//	natscompare replay  -url URL
//	natscompare consume -url URL -durable NAME [-batch 100]
//
// Each event line becomes one message: subject "events.<stream>" (the line's
// "stream" field), data the line itself without its newline. All messages
// go to one stream, EVENTS, with subjects "events.>" and file storage.
// run.sh times each command as a whole process, as it times evt. A summary
// goes to stderr; a failure exits 1.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const streamName = "EVENTS"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: natscompare ping|bulk|replay|consume [flags]")
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	url := fs.String("url", nats.DefaultURL, "server URL")
	file := fs.String("file", "events.ndjson", "bulk: NDJSON events to publish")
	max := fs.Int("n", 0, "bulk: publish at most this many events (0: all)")
	window := fs.Int("window", 4000, "bulk: most async publishes awaiting their ack")
	durable := fs.String("durable", "bench", "consume: durable consumer name")
	batch := fs.Int("batch", 100, "consume: messages per fetch")
	fs.Parse(args)

	start := time.Now()
	var n int
	var err error
	switch cmd {
	case "ping":
		err = ping(*url)
	case "bulk":
		n, err = bulk(*url, *file, *max, *window)
	case "replay":
		n, err = replay(*url)
	case "consume":
		n, err = consume(*url, *durable, *batch)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "natscompare %s: %v\n", cmd, err)
		os.Exit(1)
	}
	if cmd != "ping" {
		s := time.Since(start).Seconds()
		fmt.Fprintf(os.Stderr, "natscompare %s: %d messages in %.3f s, %.0f msgs/s\n", cmd, n, s, float64(n)/s)
	}
}

func connect(url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// ping succeeds once the server answers JetStream requests.
func ping(url string) error {
	nc, js, err := connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// streamOf returns the value of the line's "stream" field.
func streamOf(line []byte) ([]byte, error) {
	key := []byte(`"stream":"`)
	i := bytes.Index(line, key)
	if i < 0 {
		return nil, errors.New("line without a \"stream\" field")
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 {
		return nil, errors.New("bad \"stream\" field")
	}
	return rest[:j], nil
}

// bulk creates the stream and publishes every line of file asynchronously,
// at most window unacknowledged at once, then waits for all the acks.
func bulk(url, file string, max, window int) (int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	var failed atomic.Int64
	var firstErr atomic.Value
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}))
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     streamName,
		Subjects: []string{"events.>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		return 0, err
	}

	n := 0
	subject := make([]byte, 0, 64)
	for len(data) > 0 && (max == 0 || n < max) {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		name, err := streamOf(line)
		if err != nil {
			return n, fmt.Errorf("event %d: %w", n+1, err)
		}
		subject = append(append(subject[:0], "events."...), name...)
		// line is a slice of data, which is never written to, so the
		// client may keep it until the ack comes.
		// A full window blocks the publish until an ack frees a slot (the
		// stall wait is long because with sync_interval: always acks
		// come slowly).
		if _, err := js.PublishAsync(string(subject), line, jetstream.WithStallWait(time.Minute)); err != nil {
			return n, fmt.Errorf("event %d: %w", n+1, err)
		}
		n++
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return n, fmt.Errorf("%d acks still pending after 5 minutes", js.PublishAsyncPending())
	}
	if f := failed.Load(); f > 0 {
		return n, fmt.Errorf("%d publishes failed, the first: %v", f, firstErr.Load())
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return n, err
	}
	if info.State.Msgs != uint64(n) {
		return n, fmt.Errorf("stream holds %d messages, published %d", info.State.Msgs, n)
	}
	return n, nil
}

// replay reads every message of the stream with an ordered consumer and
// writes its data to io.Discard.
func replay(url string) (int, error) {
	nc, js, err := connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	ctx := context.Background()
	stream, err := js.Stream(ctx, streamName)
	if err != nil {
		return 0, err
	}
	total := int(stream.CachedInfo().State.Msgs)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"events.>"},
	})
	if err != nil {
		return 0, err
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	n := 0
	for n < total {
		msg, err := it.Next()
		if err != nil {
			return n, err
		}
		if _, err := io.Discard.Write(msg.Data()); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// consume creates a durable pull consumer with explicit acks from the start
// of the stream, fetches batches of batch messages and acks each one, until
// every message is consumed and the server holds no ack pending.
func consume(url, durable string, batch int) (int, error) {
	nc, js, err := connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	ctx := context.Background()
	stream, err := js.Stream(ctx, streamName)
	if err != nil {
		return 0, err
	}
	total := int(stream.CachedInfo().State.Msgs)
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: "events.>",
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for n < total {
		msgs, err := cons.Fetch(batch, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return n, err
		}
		got := 0
		for msg := range msgs.Messages() {
			if _, err := io.Discard.Write(msg.Data()); err != nil {
				return n, err
			}
			if err := msg.Ack(); err != nil {
				return n, err
			}
			got++
			n++
		}
		if err := msgs.Error(); err != nil {
			return n, err
		}
		if got == 0 {
			return n, fmt.Errorf("no message within 5 s, %d of %d consumed", n, total)
		}
	}
	// Acks are published without waiting for a reply: wait until the
	// server has processed them all.
	if err := nc.Flush(); err != nil {
		return n, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return n, err
		}
		if info.NumAckPending == 0 && info.AckFloor.Stream >= info.Delivered.Stream {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("%d acks still pending after a minute", info.NumAckPending)
		}
		time.Sleep(time.Millisecond)
	}
}
