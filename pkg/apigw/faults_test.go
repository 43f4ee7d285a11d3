package apigw_test

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/truora/minidyn/server"

	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
)

// TestWritesFailWith503AndLeaveNoPartialState: with DynamoDB failing (globally, for the
// table, or only from the write transaction on, after the reads succeeded), every management
// write answers 503 with Retry-After, and once DynamoDB is back the table is exactly as before.
func TestWritesFailWith503AndLeaveNoPartialState(t *testing.T) {
	faults := []struct {
		name   string
		inject func(f *fixture)
	}{
		{"Global", func(f *fixture) { f.db.Server.EmulateFailure(server.FailureConditionInternalServerError) }},
		{"Table", func(f *fixture) {
			f.db.Server.EmulateFailureForTable(dynamotest.TableName, server.FailureConditionInternalServerError)
		}},
		{"AtTransaction", func(f *fixture) { f.failTransactions.Store(true) }},
	}
	writes := []request{
		{event: "create", body: str(`{"name":"new-account"}`)},
		{event: "generate", path: map[string]string{"saId": "{sa}"}},
		{event: "revoke", path: map[string]string{"saId": "{sa}", "tokenId": "{tok}"}},
		{event: "delete", path: map[string]string{"saId": "{sa}"}},
	}
	n := 0
	for _, fault := range faults {
		for _, w := range writes {
			t.Run(fault.name+"/"+w.event, func(t *testing.T) {
				f := newFixture(t)
				before := f.snapshot(t)
				fault.inject(f)
				resp, body := f.call(t, w)
				f.db.Server.EmulateFailure(server.FailureConditionNone)
				f.db.Server.EmulateFailureForTable(dynamotest.TableName, server.FailureConditionNone)
				f.failTransactions.Store(false)
				if resp.StatusCode != 503 || resp.Headers["Retry-After"] == "" {
					t.Fatalf("status %d, Retry-After %q, body %v; want 503 with Retry-After", resp.StatusCode, resp.Headers["Retry-After"], body)
				}
				if after := f.snapshot(t); !reflect.DeepEqual(before, after) {
					t.Fatal("a failed write changed the table")
				}
				n++
			})
		}
	}
	t.Logf("%d faults injected into management writes", n)
}

// TestDeleteSurvivesUnprocessedCleanup: when BatchWriteItem leaves the clean-up of closed
// tokens unprocessed, the delete still succeeds (its transaction made every token unusable),
// and what is left behind carries a TTL.
func TestDeleteSurvivesUnprocessedCleanup(t *testing.T) {
	f := newFixture(t)
	f.db.Server.EmulateUnprocessedItems(dynamotest.TableName, func(int, map[string]*server.AttributeValue) bool { return true })
	defer f.db.Server.ClearUnprocessedItems()
	resp, body := f.call(t, request{event: "delete", path: map[string]string{"saId": "{sa}"}})
	if resp.StatusCode != 204 {
		t.Fatalf("status %d %v", resp.StatusCode, body)
	}
	for _, item := range f.snapshot(t) {
		if item["saId"] == nil || item["saId"].(*types.AttributeValueMemberS).Value != f.ids["{sa}"] {
			continue
		}
		if item["type"].(*types.AttributeValueMemberS).Value == "token" && item["ttl"] == nil {
			t.Fatalf("closed-token metadata left without a TTL: %v", item["sk"])
		}
		if typ := item["type"].(*types.AttributeValueMemberS).Value; typ != "token" && typ != "event" {
			t.Fatalf("left behind: %v", item["sk"])
		}
	}
}

// faultyDB is the real client, failing TransactWriteItems on demand: the reads a write does
// first succeed, and the failure lands on the write itself.
type faultyDB struct {
	*dynamodb.Client
	fail *atomic.Bool
}

func (d faultyDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if d.fail.Load() {
		return nil, &types.InternalServerError{Message: new(string)}
	}
	return d.Client.TransactWriteItems(ctx, in, opts...)
}
