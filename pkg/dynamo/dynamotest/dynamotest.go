// Package dynamotest gives tests a DynamoDB table reached through the real AWS SDK: on the
// embedded DynamoDB (minidyn held to DynamoDB's limits, pkg/dynamolocal), or on moto server as
// a second implementation (DYNAMODB_BACKEND=moto; `make test` starts moto and runs the store,
// usage and audit tests on both). There is no hand-written fake. A Tap in the client's HTTP transport counts calls and injects failures
// the way DynamoDB fails, on either backend.
package dynamotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamolocal"
)

// Backends a test can run on.
const (
	Embedded = "embedded" // minidyn behind pkg/dynamolocal
	Moto     = "moto"     // moto server at MOTO_URL
)

// tableName is the table Start creates on the embedded DynamoDB; on moto every test has a
// table of its own, named from it (DB.Table).
const tableName = "service-accounts-test"

// DB is one test's table and an SDK client for it.
type DB struct {
	Backend string
	Client  *dynamodb.Client
	Table   string
	Tap     *Tap
	URL     string // the DynamoDB endpoint
}

// NewClient returns a real SDK client for the DynamoDB endpoint at url, through transport
// when it is not nil, with static credentials and the SDK's standard retries (a connection
// reset is retried as it would be in AWS), backing off by a millisecond so that
// fault-injection tests stay fast.
func NewClient(url string, transport http.RoundTripper) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   &http.Client{Transport: transport},
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		}),
	})
}

// Start creates the table from dynamo.TableDefinition on the backend the tests run on, for
// the test's duration: the embedded DynamoDB, fresh for each test; or, when DYNAMODB_BACKEND is
// "moto", a table of the test's own on the moto server at MOTO_URL (`make test` runs the store,
// usage and audit tests a second time that way).
func Start(tb testing.TB) *DB {
	tb.Helper()
	switch backend := os.Getenv("DYNAMODB_BACKEND"); backend {
	case "", Embedded:
		hs := httptest.NewServer(dynamolocal.New())
		tb.Cleanup(hs.Close)
		return open(tb, Embedded, hs.URL, tableName)
	case Moto:
		url := os.Getenv("MOTO_URL")
		if url == "" {
			tb.Fatal("DYNAMODB_BACKEND=moto needs MOTO_URL, the moto server's endpoint")
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		db := open(tb, Moto, url, tableName+"-"+hex.EncodeToString(b[:]))
		tb.Cleanup(func() {
			_, _ = db.Client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(db.Table)})
		})
		return db
	default:
		tb.Fatalf("DYNAMODB_BACKEND=%q: want %q or %q", backend, Embedded, Moto)
		return nil
	}
}

func open(tb testing.TB, backend, url, table string) *DB {
	tb.Helper()
	db := &DB{Backend: backend, Table: table, Tap: &Tap{}, URL: url}
	if backend == Moto {
		db.Tap.Next = SerialWrites(nil)
	}
	db.Client = NewClient(url, db.Tap)
	if _, err := db.Client.CreateTable(context.Background(), dynamo.TableDefinition(table)); err != nil {
		tb.Fatalf("create table on %s: %v", backend, err)
	}
	return db
}

// Call is one DynamoDB API call as it crosses the wire.
type Call struct {
	Op   string // e.g. "TransactWriteItems"
	Body []byte
}

// Tap is an HTTP transport in front of DynamoDB: it counts calls by operation and fails
// those a test chooses, as DynamoDB fails: HTTP 500 InternalServerError, which the SDK
// retries and then reports.
type Tap struct {
	Next http.RoundTripper // default http.DefaultTransport

	mu        sync.Mutex
	fail      func(Call) bool
	fault     fault
	calls     map[string]int
	succeeded map[string]int
}

// fault is how a failed call is answered.
type fault struct {
	status int
	body   string
}

var (
	internalError = fault{500, `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error (injected)"}`}
	throttled     = fault{400, `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",` +
		`"message":"The level of configured provisioned throughput for the table was exceeded (injected)"}`}
)

// Fail makes every call that match reports fail with InternalServerError; nil stops failing.
func (t *Tap) Fail(match func(Call) bool) { t.set(match, internalError) }

// Reject makes every call that match reports fail as DynamoDB rejects a request: HTTP 400
// with errType and message.
func (t *Tap) Reject(match func(Call) bool, errType, message string) {
	b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.dynamodb.v20120810#" + errType, "message": message})
	t.set(match, fault{400, string(b)})
}

// Throttle makes every call that match reports fail as throttled; nil stops failing.
func (t *Tap) Throttle(match func(Call) bool) { t.set(match, throttled) }

// FailAll makes every call fail until Fail(nil).
func (t *Tap) FailAll() { t.Fail(func(Call) bool { return true }) }

func (t *Tap) set(match func(Call) bool, f fault) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fail, t.fault = match, f
}

// Calls returns how many calls of op were made (attempts, retries included).
func (t *Tap) Calls(op string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls[op]
}

// Succeeded returns how many calls of the operations named succeeded.
func (t *Tap) Succeeded(ops ...string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, op := range ops {
		n += t.succeeded[op]
	}
	return n
}

// RoundTrip counts the call, then fails it or sends it on.
func (t *Tap) RoundTrip(r *http.Request) (*http.Response, error) {
	target := r.Header.Get("X-Amz-Target")
	c := Call{Op: target[strings.LastIndexByte(target, '.')+1:]}
	if r.Body != nil {
		c.Body, _ = io.ReadAll(r.Body)
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(c.Body))
	}
	t.mu.Lock()
	if t.calls == nil {
		t.calls = map[string]int{}
	}
	t.calls[c.Op]++
	fail, f := t.fail != nil && t.fail(c), t.fault
	t.mu.Unlock()
	if fail {
		return &http.Response{StatusCode: f.status, Status: http.StatusText(f.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}}, Body: io.NopCloser(strings.NewReader(f.body)),
			ContentLength: int64(len(f.body)), Request: r}, nil
	}
	next := t.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK {
		t.mu.Lock()
		if t.succeeded == nil {
			t.succeeded = map[string]int{}
		}
		t.succeeded[c.Op]++
		t.mu.Unlock()
	}
	return resp, err
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
			RequestItems: map[string][]types.WriteRequest{w.db.Table: w.reqs},
		})
		if err != nil {
			w.tb.Fatal(err)
		}
		w.reqs = out.UnprocessedItems[w.db.Table]
	}
}

// SerialWrites is a transport in front of moto server that runs each transaction alone. moto
// 5.2.5 applies a transaction without isolating it from concurrent writes: one running beside
// another write can undo it (50 racing generates at a cap of 10 left 11 tokens; two accounts'
// sweep pages left a count at -1). DynamoDB isolates them, cancelling one of two conflicting
// transactions with TransactionConflict. So in front of moto a TransactWriteItems waits for the
// writes in flight and holds the others back until it is answered; other writes still run
// side by side, and reads and the embedded DynamoDB are left as they are.
func SerialWrites(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return serialWrites{next}
}

type serialWrites struct{ next http.RoundTripper }

// motoWrites orders the writers of the moto server this process talks to.
var motoWrites sync.RWMutex

func (s serialWrites) RoundTrip(r *http.Request) (*http.Response, error) {
	target := r.Header.Get("X-Amz-Target")
	switch target[strings.LastIndexByte(target, '.')+1:] {
	case "TransactWriteItems":
		motoWrites.Lock()
		defer motoWrites.Unlock()
	case "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem":
		motoWrites.RLock()
		defer motoWrites.RUnlock()
	default:
		return s.next.RoundTrip(r)
	}
	resp, err := s.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	// Read the answer before letting the next write in: moto has applied the write by the
	// time it answers.
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
