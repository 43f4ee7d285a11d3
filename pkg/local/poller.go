package local

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"reflect"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/opentrace/service-accounts/pkg/dynamolocal"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// The event source mapping's polling: each shard four times a second, as Lambda polls, and
// the stream's shards every few seconds, since shards close and split over time.
const (
	pollInterval     = 250 * time.Millisecond
	describeInterval = 5 * time.Second
	recordsPerCall   = 1000
)

// pollStream reads the table's stream through the DynamoDB Streams API, with the subscribed
// function's role and clients, and delivers its records to sub as Lambda's event source
// mapping does: every shard in order, a parent shard before its children, from where the
// stream ends when polling starts (StartingPosition LATEST) or its oldest record
// (TRIM_HORIZON).
//
// Each poll takes a fresh iterator after the last record delivered (AFTER_SEQUENCE_NUMBER),
// so an iterator that expired (15 minutes) or that the stream spoilt is never reused: moto
// 5.2.5 hands an iterator taken before a cancelled transaction a record that was never
// committed and then nothing more. Records of a MODIFY that changed nothing are dropped, since
// DynamoDB writes none (moto does), and creation times are rounded down to the second, as
// DynamoDB rounds them.
func (a *AWS) pollStream(ctx context.Context, sub *Subscription, clients wire.AWS, endpoint string, log *slog.Logger) error {
	if endpoint == "" {
		endpoint = a.endpoints["dynamodb"]
	}
	client := dynamodbstreams.New(dynamodbstreams.Options{Region: clients.Region, Credentials: clients.Credentials,
		HTTPClient: clients.HTTPClient, BaseEndpoint: aws.String(endpoint)})
	p := &poller{client: client, stream: a.streamARN, sub: sub, log: log, shards: map[string]*shard{}}
	// Where the stream ends is taken before the stack serves, as a mapping starts at LATEST
	// when it is created: nothing written after the start is skipped.
	if err := p.describe(ctx, sub.cfg.StartingPosition != "TRIM_HORIZON"); err != nil {
		return fmt.Errorf("read the stream %s: %w", a.streamARN, err)
	}
	go p.run(ctx)
	return nil
}

func (p *poller) run(ctx context.Context) {
	described := time.Now()
	for ctx.Err() == nil {
		if time.Since(described) > describeInterval {
			if err := p.describe(ctx, false); err != nil {
				p.log.Warn("describe stream", slog.String("error", err.Error()))
			} else {
				described = time.Now()
			}
		}
		for _, sh := range p.order() {
			if err := p.read(ctx, sh); err != nil && ctx.Err() == nil {
				p.log.Warn("read stream shard", slog.String("shard", sh.id), slog.String("error", err.Error()))
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollInterval):
		}
	}
}

type poller struct {
	client *dynamodbstreams.Client
	stream string
	sub    *Subscription
	log    *slog.Logger
	shards map[string]*shard
	ids    []string // in the order DescribeStream listed them
}

type shard struct {
	id, parent string
	last       string // sequence number of the last record read; "" for none yet
	closed     bool   // read to its end
	queue      int
}

// describe learns the stream's shards. At the first description with LATEST, the records
// already in them are skipped.
func (p *poller) describe(ctx context.Context, skipExisting bool) error {
	var start *string
	for {
		out, err := p.client.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(p.stream), ExclusiveStartShardId: start})
		if err != nil {
			return err
		}
		for _, s := range out.StreamDescription.Shards {
			id := aws.ToString(s.ShardId)
			if _, known := p.shards[id]; known {
				continue
			}
			h := fnv.New32a()
			h.Write([]byte(id))
			sh := &shard{id: id, parent: aws.ToString(s.ParentShardId), queue: int(h.Sum32() % uint32(len(p.sub.queues)))}
			if skipExisting {
				if err := p.skip(ctx, sh); err != nil {
					return err
				}
			}
			p.shards[id] = sh
			p.ids = append(p.ids, id)
		}
		start = out.StreamDescription.LastEvaluatedShardId
		if start == nil {
			return nil
		}
	}
}

// order lists the shards to read now: open ones whose parent is read to its end or unknown.
func (p *poller) order() []*shard {
	var out []*shard
	for _, id := range p.ids {
		sh := p.shards[id]
		if parent, ok := p.shards[sh.parent]; sh.closed || (ok && !parent.closed) {
			continue
		}
		out = append(out, sh)
	}
	return out
}

// skip moves a shard's position past the records it holds now.
func (p *poller) skip(ctx context.Context, sh *shard) error {
	for {
		records, next, err := p.records(ctx, sh)
		if err != nil {
			return err
		}
		if len(records) > 0 {
			sh.last = aws.ToString(records[len(records)-1].Dynamodb.SequenceNumber)
		}
		if len(records) == 0 || next == nil {
			sh.closed = next == nil
			return nil
		}
	}
}

// read delivers what a shard holds after its position.
func (p *poller) read(ctx context.Context, sh *shard) error {
	records, next, err := p.records(ctx, sh)
	if err != nil {
		return err
	}
	for _, r := range records {
		sh.last = aws.ToString(r.Dynamodb.SequenceNumber)
		if rec, ok := p.event(r); ok {
			p.sub.push(sh.queue, rec)
		}
	}
	sh.closed = next == nil && len(records) == 0
	return nil
}

// records reads one batch after the shard's position with a fresh iterator.
func (p *poller) records(ctx context.Context, sh *shard) ([]types.Record, *string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(p.stream), ShardId: aws.String(sh.id),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if sh.last != "" {
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(sh.last)
	}
	it, err := p.client.GetShardIterator(ctx, in)
	if err != nil {
		return nil, nil, err
	}
	out, err := p.client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(recordsPerCall)})
	if err != nil {
		return nil, nil, err
	}
	return out.Records, out.NextShardIterator, nil
}

// event turns a Streams API record into the record Lambda delivers, or reports a record
// DynamoDB would not have written.
func (p *poller) event(r types.Record) (events.DynamoDBEventRecord, bool) {
	d := r.Dynamodb
	if r.EventName == types.OperationTypeModify && reflect.DeepEqual(image(d.OldImage), image(d.NewImage)) {
		return events.DynamoDBEventRecord{}, false
	}
	raw, _ := json.Marshal(map[string]any{"Keys": image(d.Keys), "NewImage": image(d.NewImage), "OldImage": image(d.OldImage)})
	var rec events.DynamoDBEventRecord
	if err := json.Unmarshal(raw, &rec.Change); err != nil {
		p.log.Warn("stream record unreadable", slog.String("error", err.Error()))
		return events.DynamoDBEventRecord{}, false
	}
	rec.Change.SequenceNumber = aws.ToString(d.SequenceNumber)
	rec.Change.SizeBytes = aws.ToInt64(d.SizeBytes)
	rec.Change.StreamViewType = string(d.StreamViewType)
	if d.ApproximateCreationDateTime != nil {
		rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: d.ApproximateCreationDateTime.UTC().Truncate(time.Second)}
	}
	rec.EventID, rec.EventName, rec.EventVersion = aws.ToString(r.EventID), string(r.EventName), aws.ToString(r.EventVersion)
	rec.EventSource, rec.AWSRegion, rec.EventSourceArn = aws.ToString(r.EventSource), aws.ToString(r.AwsRegion), p.stream
	return rec, true
}

// image is an item of a stream record in DynamoDB's JSON, nil for none.
func image(m map[string]types.AttributeValue) map[string]any {
	if m == nil {
		return nil
	}
	item, err := attributevalue.FromDynamoDBStreamsMap(m)
	if err != nil {
		return nil // the SDK decoded it: every value has a type the conversion knows
	}
	return dynamolocal.WireItem(item)
}
