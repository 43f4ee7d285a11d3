package local

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/wire"
)

// StreamHandler is a function subscribed to the stream.
type StreamHandler = wire.StreamHandler

// SubscriptionConfig is an event source mapping's settings, as the template's DynamoDB event
// declares them.
type SubscriptionConfig struct {
	Name                    string
	BatchSize               int
	Window                  time.Duration
	Filters                 []Pattern // a record is delivered if any matches; none: all records
	ReportBatchItemFailures bool
	Bisect                  bool
	MaxRetries              int // -1: until the record expires
	MaxRecordAge            time.Duration
	RetryDelay              time.Duration
	StartingPosition        string // LATEST or TRIM_HORIZON
}

// Subscription delivers records to one function, one poller per shard: within a shard,
// batches are delivered in order and a failing batch is retried before anything after it,
// while other shards go on.
type Subscription struct {
	cfg     SubscriptionConfig
	handler StreamHandler
	log     *slog.Logger
	now     func() time.Time
	queues  []*queue

	mu      sync.Mutex
	idle    *sync.Cond
	pending int                          // records pushed and not yet delivered or failed
	failed  []events.DynamoDBEventRecord // the on-failure destination
}

type queue struct {
	mu      sync.Mutex
	records []events.DynamoDBEventRecord
	wake    chan struct{}
}

func (q *queue) put(r events.DynamoDBEventRecord) {
	q.mu.Lock()
	q.records = append(q.records, r)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits for at least one record (or ctx's end), then up to the batching window for more,
// and returns up to max records.
func (q *queue) take(ctx context.Context, max int, window time.Duration) []events.DynamoDBEventRecord {
	for {
		q.mu.Lock()
		n := len(q.records)
		q.mu.Unlock()
		if n > 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		}
	}
	if window > 0 {
		deadline := time.NewTimer(window)
		defer deadline.Stop()
	wait:
		for {
			q.mu.Lock()
			n := len(q.records)
			q.mu.Unlock()
			if n >= max {
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-deadline.C:
				break wait
			case <-q.wake:
			}
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.records))
	batch := append([]events.DynamoDBEventRecord(nil), q.records[:n]...)
	q.records = q.records[n:]
	return batch
}

// Subscribe starts delivering the stream's records to handler until ctx ends.
func (s *Stream) Subscribe(ctx context.Context, cfg SubscriptionConfig, handler StreamHandler, log *slog.Logger) *Subscription {
	sub := newSubscription(ctx, cfg, handler, log, s.now, s.shards)
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	return sub
}

// newSubscription starts delivering to handler what is pushed to it, one poller per queue,
// until ctx ends.
func newSubscription(ctx context.Context, cfg SubscriptionConfig, handler StreamHandler, log *slog.Logger, now func() time.Time, queues int) *Subscription {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = 100 * time.Millisecond
	}
	sub := &Subscription{cfg: cfg, handler: handler, log: log, now: now}
	sub.idle = sync.NewCond(&sub.mu)
	for range queues {
		sub.queues = append(sub.queues, &queue{wake: make(chan struct{}, 1)})
	}
	for _, q := range sub.queues {
		go sub.poll(ctx, q)
	}
	return sub
}

func (sub *Subscription) push(shard int, r events.DynamoDBEventRecord) {
	if !sub.matches(r) {
		return // Lambda drops filtered-out records before batching
	}
	sub.mu.Lock()
	sub.pending++
	sub.mu.Unlock()
	sub.queues[shard].put(r)
}

func (sub *Subscription) matches(r events.DynamoDBEventRecord) bool {
	if len(sub.cfg.Filters) == 0 {
		return true
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return false
	}
	var doc map[string]any
	if json.Unmarshal(raw, &doc) != nil {
		return false
	}
	for _, p := range sub.cfg.Filters {
		if p.Match(doc) {
			return true
		}
	}
	return false
}

func (sub *Subscription) poll(ctx context.Context, q *queue) {
	for {
		batch := q.take(ctx, sub.cfg.BatchSize, sub.cfg.Window)
		if batch == nil {
			return
		}
		sub.deliver(ctx, batch, 0)
	}
}

// deliver invokes the function with batch until every record has succeeded or gone to the
// on-failure destination, honouring partial-batch responses, bisection, the retry limit and
// the maximum record age.
func (sub *Subscription) deliver(ctx context.Context, batch []events.DynamoDBEventRecord, attempt int) {
	for len(batch) > 0 {
		if ctx.Err() != nil {
			return
		}
		if sub.cfg.MaxRecordAge > 0 {
			fresh := batch[:0:0]
			for _, r := range batch {
				if sub.now().Sub(r.Change.ApproximateCreationDateTime.Time) > sub.cfg.MaxRecordAge {
					sub.fail([]events.DynamoDBEventRecord{r}, "record older than the maximum age")
				} else {
					fresh = append(fresh, r)
				}
			}
			batch = fresh
			if len(batch) == 0 {
				return
			}
		}
		resp, err := invoke(ctx, sub.handler, events.DynamoDBEvent{Records: batch})
		var retry []events.DynamoDBEventRecord
		switch {
		case err != nil && sub.cfg.Bisect && len(batch) > 1:
			// A function error with bisection: retry each half on its own, so one bad record
			// is isolated in O(log n) invocations.
			half := len(batch) / 2
			sub.log.Warn("stream batch failed; bisecting", slog.String("subscription", sub.cfg.Name),
				slog.Int("records", len(batch)), slog.String("error", err.Error()))
			sub.deliver(ctx, batch[:half], attempt+1)
			sub.deliver(ctx, batch[half:], attempt+1)
			return
		case err != nil:
			retry = batch
		case sub.cfg.ReportBatchItemFailures && len(resp.BatchItemFailures) > 0:
			// Lambda checkpoints before the lowest failed sequence number and retries from it.
			from := len(batch)
			for _, f := range resp.BatchItemFailures {
				found := false
				for i, r := range batch {
					if r.Change.SequenceNumber == f.ItemIdentifier {
						from, found = min(from, i), true
					}
				}
				if !found { // an identifier that names no record fails the whole batch
					from = 0
				}
			}
			sub.done(from)
			retry = batch[from:]
		}
		if retry == nil {
			sub.done(len(batch))
			return
		}
		attempt++
		if sub.cfg.MaxRetries >= 0 && attempt > sub.cfg.MaxRetries {
			sub.fail(retry, "retries exhausted")
			return
		}
		batch = retry
		select {
		case <-ctx.Done():
			return
		case <-time.After(sub.cfg.RetryDelay):
		}
	}
}

func (sub *Subscription) done(n int) {
	sub.mu.Lock()
	sub.pending -= n
	if sub.pending == 0 {
		sub.idle.Broadcast()
	}
	sub.mu.Unlock()
}

func (sub *Subscription) fail(records []events.DynamoDBEventRecord, reason string) {
	sub.log.Error("stream records sent to the on-failure destination", slog.String("subscription", sub.cfg.Name),
		slog.Int("records", len(records)), slog.String("reason", reason),
		slog.String("firstSequenceNumber", records[0].Change.SequenceNumber))
	sub.mu.Lock()
	sub.failed = append(sub.failed, records...)
	sub.mu.Unlock()
	sub.done(len(records))
}

// Failed returns the records that went to the on-failure destination.
func (sub *Subscription) Failed() []events.DynamoDBEventRecord {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return append([]events.DynamoDBEventRecord(nil), sub.failed...)
}

// Drain waits until every record pushed so far has been delivered or has failed.
func (sub *Subscription) Drain() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for sub.pending > 0 {
		sub.idle.Wait()
	}
}
