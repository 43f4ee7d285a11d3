// Package dynamotest runs the store's table on minidyn's DynamoDB HTTP server, reached through
// the real AWS SDK client, for tests in any package. It is the only DynamoDB the tests use:
// there is no hand-written fake.
package dynamotest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/truora/minidyn/server"

	"github.com/opentrace/service-accounts/pkg/dynamo"
)

// TableName is the table the tests create.
const TableName = "service-accounts-test"

// DB is a running minidyn server with the table created, and an SDK client for it.
type DB struct {
	Client *dynamodb.Client
	Server *server.Server // for failure emulation
	URL    string
}

// NewClient returns a real SDK client for the DynamoDB endpoint at url, with static
// credentials and the SDK's standard retries (a connection reset on loopback is retried as it
// would be in AWS), backing off by a millisecond so that fault-injection tests stay fast.
func NewClient(url string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		}),
	})
}

// Start starts minidyn in an httptest server, creates the table from dynamo.TableDefinition and
// stops everything when the test ends.
func Start(tb testing.TB) *DB {
	tb.Helper()
	srv := server.NewServer()
	hs := httptest.NewServer(srv)
	tb.Cleanup(hs.Close)
	db := &DB{Client: NewClient(hs.URL), Server: srv, URL: hs.URL}
	if _, err := db.Client.CreateTable(context.Background(), dynamo.TableDefinition(TableName)); err != nil {
		tb.Fatalf("create table: %v", err)
	}
	return db
}

// Writer seeds items fast: puts are sent in BatchWriteItem calls of 25, the API's maximum,
// and what DynamoDB leaves unprocessed is sent again.
type Writer struct {
	tb   testing.TB
	db   *DB
	reqs []types.WriteRequest
}

// Writer returns a Writer on the table; call Flush after the last Put.
func (db *DB) Writer(tb testing.TB) *Writer { return &Writer{tb: tb, db: db} }

// Put queues one item, sending a full batch.
func (w *Writer) Put(item map[string]types.AttributeValue) {
	w.reqs = append(w.reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	if len(w.reqs) == 25 {
		w.Flush()
	}
}

// Flush sends what is queued, until DynamoDB has processed all of it.
func (w *Writer) Flush() {
	w.tb.Helper()
	for len(w.reqs) > 0 {
		out, err := w.db.Client.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{TableName: w.reqs},
		})
		if err != nil {
			w.tb.Fatal(err)
		}
		w.reqs = out.UnprocessedItems[TableName]
	}
}
