// Package testworld gives tests the system as template.yaml wires it: every function built by
// its constructor, on the embedded DynamoDB (or moto: DYNAMODB_BACKEND=moto), with each
// function's AWS calls held to its IAM role and a Tap on them to count calls and inject
// faults, a settable clock, and the logs. It is the local stack, not serving HTTP.
package testworld

import (
	"cmp"
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/iam"
	"github.com/opentrace/service-accounts/pkg/local"
	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/template"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/token"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// Template is the path of the project's template.yaml.
var Template = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "template.yaml")
}()

// World is the wired system of one test. Its clock stands still at the time it was built
// until the test moves it.
type World struct {
	*local.Stack
	Clock *testkit.Clock
	Tap   *dynamotest.Tap // every function's AWS calls, after the IAM check
	Logs  *testkit.Buffer // the stack's and the functions' log lines
	Ctx   context.Context
	app   *wire.App
}

// New builds the system with the given template parameters (as PARAMETER_OVERRIDES would set
// them), on a table of its own, stopped when the test ends.
func New(tb testing.TB, params map[string]string) *World {
	tb.Helper()
	w := &World{Clock: testkit.NewClock(time.Now().UTC().Truncate(time.Millisecond)), Tap: &dynamotest.Tap{}, Logs: &testkit.Buffer{}, Ctx: context.Background()}
	opts := local.Options{
		Template: Template, Params: params, Logs: w.Logs, Now: w.Clock.Now, RetryBackoff: time.Millisecond,
		Transport: func(next http.RoundTripper) http.RoundTripper { w.Tap.Next = next; return w.Tap },
	}
	if os.Getenv("DYNAMODB_BACKEND") == dynamotest.Moto {
		opts.DynamoDBEndpoint = os.Getenv("MOTO_URL")
		opts.TableName = "service-accounts-" + strings.ToLower(rand.Text()[:10])
		opts.Transport = func(next http.RoundTripper) http.RoundTripper {
			w.Tap.Next = dynamotest.SerialWrites(next)
			return w.Tap
		}
		// moto copies every table it holds for each transaction: leave none behind.
		tb.Cleanup(func() {
			db := dynamotest.NewClient(opts.DynamoDBEndpoint, nil)
			_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(opts.TableName)})
		})
	}
	s, err := local.New(w.Ctx, "http://127.0.0.1:0", opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	w.Stack = s
	return w
}

// App is the domain service, store and settings the management functions are built with,
// holding every secret (generate's peppers, list's cursor key), on clients that bypass the IAM
// check: for setting up what a test then drives through the functions.
func (w *World) App(tb testing.TB) *wire.App {
	tb.Helper()
	if w.app == nil {
		rt, list := w.AdminRuntime("GenerateFunction"), w.AdminRuntime("ListFunction")
		generate := rt.Getenv
		rt.Getenv = func(k string) string { return cmp.Or(generate(k), list.Getenv(k)) }
		app, err := wire.NewApp(w.Ctx, rt, wire.Peppers|wire.Cursors)
		if err != nil {
			tb.Fatal(err)
		}
		w.app = app
	}
	return w.app
}

// Functions loads template.yaml and returns it with its functions, by logical id.
func Functions(tb testing.TB) (*template.Template, map[string]template.Function) {
	tb.Helper()
	tpl, err := template.Load(Template)
	if err != nil {
		tb.Fatal(err)
	}
	functions, err := tpl.Functions()
	if err != nil {
		tb.Fatal(err)
	}
	return tpl, functions
}

// Events are the events of type typ (Api, DynamoDB, Schedule, ...) of template.yaml's
// functions, in no particular order.
func Events(tb testing.TB, typ string) []template.Event {
	tb.Helper()
	_, functions := Functions(tb)
	var events []template.Event
	for _, f := range functions {
		for _, e := range f.Events {
			if e.Type == typ {
				events = append(events, e)
			}
		}
	}
	return events
}

// FunctionClient is a DynamoDB client on db's table with the IAM role template.yaml gives
// function: calls its role does not allow fail as AWS fails them. It is for unit tests that
// build a function's parts themselves.
func FunctionClient(tb testing.TB, function string, db *dynamotest.DB) *dynamodb.Client {
	tb.Helper()
	tpl, functions := Functions(tb)
	f, ok := functions[function]
	if !ok {
		tb.Fatalf("template.yaml has no function %s", function)
	}
	stream := "arn:aws:dynamodb:" + local.Region + ":" + local.AccountID + ":table/" + db.Table + "/stream/local"
	secrets := map[string]string{}
	for id, res := range tpl.Resources {
		if res.Type == "AWS::SecretsManager::Secret" {
			secrets[id] = "arn:aws:secretsmanager:" + local.Region + ":" + local.AccountID + ":secret:" + id + "-AbCdEf"
		}
	}
	role, err := iam.Build(tpl, f, local.Resolver(tpl, nil, db.Table, stream, secrets), local.AccountID)
	if err != nil {
		tb.Fatal(err)
	}
	env := &iam.Environment{Region: local.Region, Account: local.AccountID, PartitionKeys: map[string]string{db.Table: "pk"}}
	return dynamotest.NewClient(db.URL, &iam.Transport{Role: role, Env: env, Next: db.Tap})
}

// CursorKey signs the cursors of Service's store.
var CursorKey = []byte(strings.Repeat("c", 32))

// Pepper is the pepper Service hashes tokens with, unless a test gives its own.
var Pepper = token.Pepper{Version: "1", Key: []byte(strings.Repeat("p", 48))}

// Service is the domain service on db's table, with full access, hashing with pepper: for
// setting up what a test then drives through a function, and for the domain's own tests.
func Service(tb testing.TB, db *dynamotest.DB, pepper token.Pepper, opts ...sa.Option) *sa.Service {
	tb.Helper()
	src, err := secrets.NewStatic(secrets.Ring{Current: pepper})
	if err != nil {
		tb.Fatal(err)
	}
	store, err := dynamo.New(db.Client, db.Table, CursorKey)
	if err != nil {
		tb.Fatal(err)
	}
	return sa.NewService(store, secrets.Peppers{Source: src}, opts...)
}
