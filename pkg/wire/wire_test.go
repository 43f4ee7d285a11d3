package wire_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/secretslocal"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// TestColdStartWarmsDynamoDBWhileReadingTheSecret: a function that reads the pepper at its cold
// start opens its connection to DynamoDB at the same time, so that on AWS the first request
// does not pay for a TLS handshake after the secret's round trip. Here the secret takes 200 ms
// to arrive, and DynamoDB is reached before it does.
func TestColdStartWarmsDynamoDBWhileReadingTheSecret(t *testing.T) {
	db := dynamotest.Start(t)
	var mu sync.Mutex
	var warmedAt, secretAt time.Time
	ddb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			warmedAt = time.Now()
			mu.Unlock()
			_, _ = w.Write([]byte("healthy"))
			return
		}
		http.Error(w, "not this test's", http.StatusNotImplemented)
	}))
	defer ddb.Close()
	sm := secretslocal.New("us-east-1", "123456789012")
	sm.Put("pepper", `{"currentVersion":"1","current":"`+strings.Repeat("p", 48)+`"}`)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		secretAt = time.Now()
		mu.Unlock()
		sm.ServeHTTP(w, r)
	}))
	defer slow.Close()

	rt := wire.FromLambda()
	env := map[string]string{"TABLE_NAME": db.Table, "PEPPER_SECRET_ID": "pepper"}
	rt.Getenv = func(k string) string { return env[k] }
	rt.AWS.Region = "us-east-1"
	rt.AWS.Credentials = credentials.NewStaticCredentialsProvider("test", "test", "")
	rt.AWS.Endpoints = map[string]string{"dynamodb": ddb.URL, "secretsmanager": slow.URL}
	if _, err := wire.NewApp(context.Background(), rt, wire.Peppers); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if warmedAt.IsZero() || !warmedAt.Before(secretAt) {
		t.Fatalf("DynamoDB reached at %v, the secret at %v: want DynamoDB first", warmedAt, secretAt)
	}
}
