package dynamo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// maxTransactItems is DynamoDB's limit on the actions of one TransactWriteItems.
const maxTransactItems = 100

// txn is a TransactWriteItems request whose items have names, so that which conditions failed
// is read by name, never by position: reordering a transaction cannot change which error a
// caller gets.
type txn struct {
	names []string
	items []types.TransactWriteItem
}

func (t *txn) add(name string, item types.TransactWriteItem) {
	t.names = append(t.names, name)
	t.items = append(t.items, item)
}

// failures names the items whose condition failed. DynamoDB reports every item's outcome; the
// set is empty when the transaction failed for another reason, and nil when it did not fail.
type failures map[string]bool

// write sends the transaction. A cancellation by failed conditions is returned as the names of
// those conditions and the error; any other failure as nil failures and the error. A
// transaction refused because its org was deleted (its "org" item, orgAlive) is errOrgDeleted,
// whatever else failed.
func (s *Store) write(ctx context.Context, t *txn) (failures, error) {
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: t.items})
	if err == nil {
		return nil, nil
	}
	failed := failures{}
	for _, i := range conditionFailures(err) {
		if i < len(t.names) {
			failed[t.names[i]] = true
		}
	}
	if failed["org"] {
		return nil, errOrgDeleted
	}
	if len(failed) == 0 {
		return nil, err
	}
	return failed, err
}

// contended runs an optimistic write until it is done: attempt reports whether a concurrent
// writer made it fail and it should run again after a back-off. After maxTransactAttempts it
// gives up with EUNAVAILABLE, so contention ends in a retryable 503 rather than a 500.
func contended(ctx context.Context, op string, attempt func() (again bool, err error)) error {
	for i := 0; ; i++ {
		again, err := attempt()
		if !again {
			return err
		}
		if i+1 == maxTransactAttempts {
			return sa.Unavailable(fmt.Errorf("%s: still contended after %d attempts: %w", op, maxTransactAttempts, err))
		}
		if err := backoff(ctx, i); err != nil {
			return sa.Unavailable(err)
		}
	}
}

// backoff waits before the next optimistic attempt: a few milliseconds, doubling, with full
// jitter, so writers that collided do not collide again in lockstep.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(2*time.Millisecond) << min(attempt, 6)))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// put is a Put of item, marshalled, conditioned on cond when it is not empty.
func (s *Store) put(item any, cond string) (types.TransactWriteItem, error) {
	av, err := marshalItem(item)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	p := &types.Put{TableName: s.table, Item: av}
	if cond != "" {
		p.ConditionExpression = aws.String(cond)
	}
	return types.TransactWriteItem{Put: p}, nil
}

func (s *Store) del(k map[string]types.AttributeValue) types.TransactWriteItem {
	return types.TransactWriteItem{Delete: &types.Delete{TableName: s.table, Key: k}}
}

func (s *Store) update(k map[string]types.AttributeValue, update, cond string, values map[string]types.AttributeValue) types.TransactWriteItem {
	u := &types.Update{TableName: s.table, Key: k, UpdateExpression: aws.String(update), ExpressionAttributeValues: values}
	if cond != "" {
		u.ConditionExpression = aws.String(cond)
	}
	return types.TransactWriteItem{Update: u}
}

// inPartition is a Query of the items of partition pk whose sort key begins with prefix (all of
// them for ""), to which a caller adds its filter and projection.
func inPartition(pk, prefix string) *dynamodb.QueryInput {
	if prefix == "" {
		return &dynamodb.QueryInput{
			KeyConditionExpression:    aws.String("pk = :pk"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
		}
	}
	return &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk), ":prefix": str(prefix)},
	}
}

// query runs in on the table, strongly consistent, every page of it, and hands each page's
// items, decoded into Ts, to each, stopping at the first error. what names the read in errors.
func query[T any](ctx context.Context, s *Store, what string, in *dynamodb.QueryInput, each func([]T) error) error {
	in.TableName, in.ConsistentRead = s.table, aws.Bool(true)
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return classify(what, err)
		}
		items, err := decodeAll[T](out.Items, what)
		if err != nil {
			return err
		}
		if err := each(items); err != nil {
			return err
		}
	}
	return nil
}

// queryAll is query, collecting every item.
func queryAll[T any](ctx context.Context, s *Store, what string, in *dynamodb.QueryInput) ([]T, error) {
	var all []T
	err := query(ctx, s, what, in, func(items []T) error {
		all = append(all, items...)
		return nil
	})
	return all, err
}

// decodeAll decodes items the table returned into Ts; one it cannot decode was not written by
// this package, EINTERNAL. what names the read.
func decodeAll[T any](items []map[string]types.AttributeValue, what string) ([]T, error) {
	var out []T
	if err := attributevalue.UnmarshalListOfMaps(items, &out); err != nil {
		return nil, sa.Internal(fmt.Errorf("%s: unmarshal: %w", what, err))
	}
	return out, nil
}
