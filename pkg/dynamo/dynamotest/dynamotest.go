// Package dynamotest runs the store's table on minidyn's DynamoDB HTTP server, reached through
// the real AWS SDK client, for tests in any package. It is the only DynamoDB the tests use:
// there is no hand-written fake.
package dynamotest

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
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
// credentials and the SDK's retries limited to maxAttempts (1 disables them, which fault tests
// want so that one emulated failure is one failed call).
func NewClient(url string, maxAttempts int) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		Retryer:      retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = maxAttempts }),
	})
}

// Start starts minidyn in an httptest server, creates the table from dynamo.TableDefinition and
// stops everything when the test ends.
func Start(tb testing.TB) *DB {
	tb.Helper()
	srv := server.NewServer()
	hs := httptest.NewServer(srv)
	tb.Cleanup(hs.Close)
	db := &DB{Client: NewClient(hs.URL, 1), Server: srv, URL: hs.URL}
	if _, err := db.Client.CreateTable(context.Background(), dynamo.TableDefinition(TableName)); err != nil {
		tb.Fatalf("create table: %v", err)
	}
	return db
}
