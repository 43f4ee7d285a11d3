package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamolocal"
)

type streamEnv struct {
	stream *Stream
	db     *dynamodb.Client
	ctx    context.Context
}

func newStreamEnv(t *testing.T, shards int) *streamEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := NewStream(dynamolocal.New(), "t", []string{"pk", "sk"}, "NEW_AND_OLD_IMAGES", shards, time.Now)
	db := dynamodb.New(dynamodb.Options{
		Region: Region, BaseEndpoint: aws.String("http://dynamodb.local"),
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		HTTPClient:  &http.Client{Transport: hostRouter{hosts: map[string]http.Handler{"dynamodb.local": s}}},
	})
	if _, err := db.CreateTable(ctx, dynamo.TableDefinition("t")); err != nil {
		t.Fatal(err)
	}
	return &streamEnv{stream: s, db: db, ctx: ctx}
}

func sv(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func (e *streamEnv) put(t *testing.T, pk, sk, v string) {
	t.Helper()
	_, err := e.db.PutItem(e.ctx, &dynamodb.PutItemInput{TableName: aws.String("t"),
		Item: map[string]types.AttributeValue{"pk": sv(pk), "sk": sv(sk), "v": sv(v)}})
	if err != nil {
		t.Fatal(err)
	}
}

// recorder is a subscribed function that remembers what it was given.
type recorder struct {
	mu      sync.Mutex
	batches [][]events.DynamoDBEventRecord
	fn      func(events.DynamoDBEvent, int) (events.DynamoDBEventResponse, error)
	calls   int
}

func (r *recorder) handle(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.batches = append(r.batches, ev.Records)
	if r.fn != nil {
		return r.fn(ev, r.calls)
	}
	return events.DynamoDBEventResponse{}, nil
}

func (r *recorder) records() []events.DynamoDBEventRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []events.DynamoDBEventRecord
	for _, b := range r.batches {
		all = append(all, b...)
	}
	return all
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestStreamRecordKinds(t *testing.T) {
	e := newStreamEnv(t, 1)
	rec := &recorder{}
	sub := e.stream.Subscribe(e.ctx, SubscriptionConfig{Name: "f", BatchSize: 100}, rec.handle, quiet)
	e.put(t, "a", "1", "x")
	e.put(t, "a", "1", "x") // no change: no record
	e.put(t, "a", "1", "y")
	_, err := e.db.DeleteItem(e.ctx, &dynamodb.DeleteItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": sv("a"), "sk": sv("1")}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.db.DeleteItem(e.ctx, &dynamodb.DeleteItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": sv("a"), "sk": sv("1")}})
	if err != nil { // deleting what is not there changes nothing
		t.Fatal(err)
	}
	// A transaction is one record per item it changes; a failed one, none.
	_, err = e.db.TransactWriteItems(e.ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String("t"), Item: map[string]types.AttributeValue{"pk": sv("b"), "sk": sv("1")}}},
		{Put: &types.Put{TableName: aws.String("t"), Item: map[string]types.AttributeValue{"pk": sv("c"), "sk": sv("1")}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.db.TransactWriteItems(e.ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String("t"), Item: map[string]types.AttributeValue{"pk": sv("d"), "sk": sv("1")}}},
		{Put: &types.Put{TableName: aws.String("t"), Item: map[string]types.AttributeValue{"pk": sv("b"), "sk": sv("1")},
			ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}})
	if err == nil {
		t.Fatal("the conditional put must fail")
	}
	sub.Drain()
	got := rec.records()
	var names []string
	for _, r := range got {
		names = append(names, r.EventName+":"+r.Change.Keys["pk"].String())
	}
	want := []string{"INSERT:a", "MODIFY:a", "REMOVE:a", "INSERT:b", "INSERT:c"}
	if !slices.Equal(names, want) {
		t.Fatalf("records = %v, want %v", names, want)
	}
	mod := got[1].Change
	if mod.OldImage["v"].String() != "x" || mod.NewImage["v"].String() != "y" || mod.StreamViewType != "NEW_AND_OLD_IMAGES" {
		t.Fatalf("MODIFY images = %v → %v", mod.OldImage, mod.NewImage)
	}
	if got[2].Change.NewImage != nil || got[2].Change.OldImage["v"].String() != "y" {
		t.Fatalf("REMOVE images = %+v", got[2].Change)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Change.SequenceNumber <= got[i-1].Change.SequenceNumber {
			t.Fatalf("sequence numbers do not increase: %v", got)
		}
	}
	if got[0].EventSource != "aws:dynamodb" || got[0].EventSourceArn != e.stream.ARN() || got[0].AWSRegion != Region {
		t.Fatalf("record metadata = %+v", got[0])
	}
}

// TestStreamOrderPerKey: however records are batched and sharded, each key's records arrive
// in the order of its writes.
func TestStreamOrderPerKey(t *testing.T) {
	e := newStreamEnv(t, 4)
	rec := &recorder{}
	sub := e.stream.Subscribe(e.ctx, SubscriptionConfig{Name: "f", BatchSize: 7, Window: 5 * time.Millisecond}, rec.handle, quiet)
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Go(func() {
			for i := range 25 {
				e.put(t, fmt.Sprintf("key%d", k), "1", fmt.Sprintf("%03d", i))
			}
		})
	}
	wg.Wait()
	sub.Drain()
	last := map[string]string{}
	n := 0
	for _, r := range rec.records() {
		k, v := r.Change.Keys["pk"].String(), r.Change.NewImage["v"].String()
		if v <= last[k] {
			t.Fatalf("key %s: %s after %s", k, v, last[k])
		}
		last[k] = v
		n++
	}
	if n != 200 {
		t.Fatalf("%d records, want 200", n)
	}
	for _, b := range rec.batches {
		if len(b) > 7 {
			t.Fatalf("a batch of %d exceeds BatchSize 7", len(b))
		}
	}
}

// TestStreamPartialBatchFailure: with ReportBatchItemFailures, a record reported failed is
// retried from itself (the ones before it are not redelivered), and a failing key holds up
// only its own shard.
func TestStreamPartialBatchFailure(t *testing.T) {
	e := newStreamEnv(t, 4)
	var mu sync.Mutex
	failuresLeft := 3
	delivered := map[string]int{}
	rec := &recorder{fn: func(ev events.DynamoDBEvent, _ int) (events.DynamoDBEventResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		var resp events.DynamoDBEventResponse
		for _, r := range ev.Records {
			if r.Change.Keys["pk"].String() == "poison" && failuresLeft > 0 {
				failuresLeft--
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: r.Change.SequenceNumber})
				break
			}
			delivered[r.Change.Keys["pk"].String()+"/"+r.Change.NewImage["v"].String()]++
		}
		return resp, nil
	}}
	sub := e.stream.Subscribe(e.ctx, SubscriptionConfig{Name: "f", BatchSize: 10, ReportBatchItemFailures: true, MaxRetries: 5,
		RetryDelay: time.Millisecond}, rec.handle, quiet)
	e.put(t, "poison", "1", "1")
	for i := range 20 {
		e.put(t, fmt.Sprintf("good%d", i), "1", "1")
	}
	sub.Drain()
	mu.Lock()
	defer mu.Unlock()
	if failuresLeft != 0 || delivered["poison/1"] != 1 {
		t.Fatalf("the failing record was not retried until it succeeded: left %d, delivered %d", failuresLeft, delivered["poison/1"])
	}
	for i := range 20 {
		if n := delivered[fmt.Sprintf("good%d/1", i)]; n != 1 {
			t.Fatalf("good%d delivered %d times, want exactly once", i, n)
		}
	}
	if len(sub.Failed()) != 0 {
		t.Fatalf("nothing should reach the on-failure destination: %v", sub.Failed())
	}
}

// TestStreamRetriesExhausted: a record that always fails goes to the on-failure destination
// after MaxRetries, and the records after it on its shard are then delivered.
func TestStreamRetriesExhausted(t *testing.T) {
	e := newStreamEnv(t, 1)
	var mu sync.Mutex
	succeeded := map[string]bool{}
	rec := &recorder{fn: func(ev events.DynamoDBEvent, _ int) (events.DynamoDBEventResponse, error) {
		for _, r := range ev.Records {
			if r.Change.Keys["pk"].String() == "poison" {
				return events.DynamoDBEventResponse{}, errors.New("boom")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range ev.Records {
			succeeded[r.Change.Keys["pk"].String()] = true
		}
		return events.DynamoDBEventResponse{}, nil
	}}
	sub := e.stream.Subscribe(e.ctx, SubscriptionConfig{Name: "f", BatchSize: 4, Bisect: true, MaxRetries: 2,
		RetryDelay: time.Millisecond}, rec.handle, quiet)
	e.put(t, "a", "1", "1")
	e.put(t, "poison", "1", "1")
	e.put(t, "b", "1", "1")
	e.put(t, "c", "1", "1")
	sub.Drain()
	failed := sub.Failed()
	if len(failed) != 1 || failed[0].Change.Keys["pk"].String() != "poison" {
		t.Fatalf("on-failure destination holds %v, want only the poison record (bisection isolates it)", failed)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{"a", "b", "c"} {
		if !succeeded[k] {
			t.Fatalf("%s was never delivered successfully", k)
		}
	}
}

func TestStreamFilter(t *testing.T) {
	e := newStreamEnv(t, 2)
	p, err := ParsePattern(`{"eventName":["INSERT","MODIFY"],"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"TOKENHASH#"}]}},"NewImage":{"v":{"S":[{"exists":true}]}}}}`)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	sub := e.stream.Subscribe(e.ctx, SubscriptionConfig{Name: "f", Filters: []Pattern{p}}, rec.handle, quiet)
	e.put(t, "TOKENHASH#1", "TOKENHASH", "x")
	e.put(t, "ORG#1", "SA#1", "x")
	_, err = e.db.PutItem(e.ctx, &dynamodb.PutItemInput{TableName: aws.String("t"),
		Item: map[string]types.AttributeValue{"pk": sv("TOKENHASH#2"), "sk": sv("TOKENHASH")}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.db.DeleteItem(e.ctx, &dynamodb.DeleteItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": sv("TOKENHASH#1"), "sk": sv("TOKENHASH")}})
	if err != nil {
		t.Fatal(err)
	}
	sub.Drain()
	got := rec.records()
	if len(got) != 1 || got[0].Change.Keys["pk"].String() != "TOKENHASH#1" || got[0].EventName != "INSERT" {
		t.Fatalf("filtered records = %v", got)
	}
	for _, bad := range []string{`{"a":[{"numeric":[">",1]}]}`, `{"a":"x"}`, `not json`} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("pattern %s must be refused", bad)
		}
	}
}

func TestBucket(t *testing.T) {
	b := newBucket(1, 3)
	for i := range 3 {
		if !b.take() {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if b.take() {
		t.Fatal("a request beyond the burst passed")
	}
	b.last = b.last.Add(-time.Second) // a second later, one more
	if !b.take() || b.take() {
		t.Fatal("the bucket does not refill at its rate")
	}
}
