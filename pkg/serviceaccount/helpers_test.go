package serviceaccount_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/token"
)

type env struct {
	svc   *sa.Service
	store *dynamo.Store
	db    *dynamotest.DB
	clock *testkit.Clock // safe for the concurrent tests
	ctx   context.Context
}

var testPepper = token.Pepper{Version: "1", Key: []byte(strings.Repeat("k", 48))}

// newEnv wires the service to the real store on minidyn, with a static pepper and a fixed clock
// the two share, as the functions' wiring has them share it.
func newEnv(t testing.TB, opts ...sa.Option) *env {
	t.Helper()
	db := dynamotest.Start(t)
	src, err := secrets.NewStatic(secrets.Ring{Current: testPepper})
	if err != nil {
		t.Fatal(err)
	}
	c := testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	store, err := dynamo.New(db.Client, db.Table, []byte(strings.Repeat("c", 32)), dynamo.WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]sa.Option{sa.WithClock(c.Now)}, opts...)
	return &env{
		svc:   sa.NewService(store, secrets.Peppers{Source: src}, opts...),
		store: store, db: db, clock: c, ctx: context.Background(),
	}
}

func (e *env) create(t testing.TB, org, name string) sa.ServiceAccount {
	t.Helper()
	acct, _, err := e.svc.Create(e.ctx, org, "user_admin", sa.CreateInput{Name: name})
	if err != nil {
		t.Fatalf("create %q in %s: %v", name, org, err)
	}
	return acct
}

func (e *env) generate(t testing.TB, org, saID string) (sa.Token, string) {
	t.Helper()
	tok, secret, err := e.svc.GenerateToken(e.ctx, org, saID, "user_admin", sa.GenerateInput{})
	if err != nil {
		t.Fatalf("generate in %s/%s: %v", org, saID, err)
	}
	return tok, secret
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := sa.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func intp(v int) *int { return &v }
