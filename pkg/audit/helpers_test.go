package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/audit"
	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/testworld"
	"github.com/opentrace/service-accounts/pkg/token"
)

// countingDB is the real SDK client, counting what reaches DynamoDB: Scan requests, their
// Limit and the largest response, and items written.
type countingDB struct {
	dynamo.API
	scans, maxScanItems, badLimits, writes atomic.Int64
	wantLimit                              int32
}

func (c *countingDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if in.Limit == nil || (c.wantLimit > 0 && *in.Limit != c.wantLimit) {
		c.badLimits.Add(1)
	}
	out, err := c.API.Scan(ctx, in, opts...)
	if err == nil {
		c.scans.Add(1)
		for n := int64(len(out.Items)); ; {
			m := c.maxScanItems.Load()
			if n <= m || c.maxScanItems.CompareAndSwap(m, n) {
				break
			}
		}
	}
	return out, err
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.writes.Add(1)
	return c.API.UpdateItem(ctx, in, opts...)
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.writes.Add(1)
	return c.API.PutItem(ctx, in, opts...)
}

func (c *countingDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.writes.Add(1)
	return c.API.DeleteItem(ctx, in, opts...)
}

func (c *countingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.writes.Add(int64(len(in.TransactItems)))
	return c.API.TransactWriteItems(ctx, in, opts...)
}

// env is the audit on the real store, with the domain service beside it.
type env struct {
	db      *dynamotest.DB
	counter *countingDB
	store   *dynamo.Store
	svc     *sa.Service
	now     time.Time // the service's clock, for tokens it creates
	ctx     context.Context
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	db := dynamotest.Start(tb)
	// The audit's store is held to the audit function's IAM role; the service that sets up
	// what it audits has full access.
	e := &env{db: db, counter: &countingDB{API: testworld.FunctionClient(tb, "AuditFunction", db)}, now: t0, ctx: context.Background()}
	e.store = dynamo.NewUnsigned(e.counter, e.db.Table)
	admin, err := dynamo.New(db.Client, db.Table, []byte(strings.Repeat("c", 32)))
	if err != nil {
		tb.Fatal(err)
	}
	peppers, err := secrets.NewStatic(secrets.Ring{Current: token.Pepper{Version: "1", Key: []byte(strings.Repeat("p", 40))}})
	if err != nil {
		tb.Fatal(err)
	}
	e.svc = sa.NewService(admin, secrets.Peppers{Source: peppers}, sa.WithClock(func() time.Time { return e.now }))
	return e
}

// runner returns a Runner on the env's store with its log and metrics captured: the Runner
// writes them from its goroutines.
func (e *env) runner(th audit.Thresholds) (*audit.Runner, *testkit.Buffer, *testkit.Buffer) {
	logs, metrics := &testkit.Buffer{}, &testkit.Buffer{}
	return &audit.Runner{
		Store: e.store, Thresholds: th, PageSize: 3,
		Log: slog.New(slog.NewJSONHandler(logs, nil)), Metrics: metrics,
	}, logs, metrics
}

func (e *env) must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// setLastUsed stands in for the usage roll-up: it writes a token's (and its account's) last use
// the way the stream consumer does.
func (e *env) setLastUsed(tb testing.TB, org, saID, tokenID string, at time.Time) {
	tb.Helper()
	for _, sk := range []string{"TOKEN#" + saID + "#" + tokenID, "SA#" + saID} {
		_, err := e.db.Client.UpdateItem(e.ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(e.db.Table),
			Key:                       map[string]types.AttributeValue{"pk": s("ORG#" + org), "sk": s(sk)},
			UpdateExpression:          aws.String("SET lastUsedAt = :at"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":at": n(at.UnixMilli())},
		})
		e.must(tb, err)
	}
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// seedShape says how seedBulk lays out a table: tokens spread over orgs, tokensPerAccount to an
// account, and risky tokens and accounts in every riskyEvery-th org only (every org when 1);
// the others are healthy, as most organisations are.
type seedShape struct {
	tokens, orgs, tokensPerAccount, riskyEvery int
}

// seedBulk writes a table of the given shape directly with BatchWriteItem, in the item shapes of
// pkg/dynamo (items.go), so that tens of thousands of tokens take seconds. In a risky org,
// token i is, by i%10: never used for 40 days (never_used), last used 100 days ago and 200 days
// old (stale, rotation_due), expiring in 3 days (expiring), revoked long ago (nothing), or
// healthy; and every fifth account was never used in its 60 days (unused_account). It returns
// the findings a run at now must count.
func seedBulk(tb testing.TB, db *dynamotest.DB, shape seedShape, now time.Time) map[string]int {
	tb.Helper()
	want := map[string]int{}
	w := db.Writer(tb)
	put := w.Put
	at := func(d time.Duration) types.AttributeValue { return n(now.Add(d).UnixMilli()) }
	accounts := shape.tokens / shape.tokensPerAccount
	// Items go in key order (org, then its counter, accounts, tokens): minidyn re-sorts its keys
	// on every insert, which is cheapest when the new key comes last.
	for o := range shape.orgs {
		org := fmt.Sprintf("org_%04d", o)
		risky := o%shape.riskyEvery == 0
		put(map[string]types.AttributeValue{"pk": s("ORG#" + org), "sk": s("ORG"), "accounts": n(int64(accounts / shape.orgs))})
		for a := o; a < accounts; a += shape.orgs {
			saID := fmt.Sprintf("sa_%08d", a)
			item := map[string]types.AttributeValue{
				"pk": s("ORG#" + org), "sk": s("SA#" + saID), "type": s("service_account"), "orgId": s(org), "saId": s(saID),
				"name": s(saID), "nameKey": s(saID), "description": s(""), "createdAt": at(-60 * audit.Day),
				"createdBy": s("user_admin"), "activeTokens": n(int64(shape.tokensPerAccount)),
			}
			if risky && a%5 == 0 {
				want[sa.FindingUnusedAccount]++
			} else {
				item["lastUsedAt"] = at(-time.Hour)
			}
			put(item)
		}
		for a := o; a < accounts; a += shape.orgs {
			saID := fmt.Sprintf("sa_%08d", a)
			for k := range shape.tokensPerAccount {
				i := a*shape.tokensPerAccount + k
				tokID := fmt.Sprintf("tok_%08d", i)
				tk := map[string]types.AttributeValue{
					"pk": s("ORG#" + org), "sk": s("TOKEN#" + saID + "#" + tokID), "type": s("token"), "orgId": s(org),
					"saId": s(saID), "tokenId": s(tokID), "name": s(""), "hint": s("otsa_…abcd"),
					"createdAt": at(-30 * audit.Day), "createdBy": s("user_admin"), "lastUsedAt": at(-time.Hour),
					"hash": s(fmt.Sprintf("%064d", i)), "pepperVersion": s("1"),
				}
				switch {
				case !risky: // healthy
				case i%10 == 0:
					tk["createdAt"] = at(-40 * audit.Day)
					delete(tk, "lastUsedAt")
					want[sa.FindingNeverUsed]++
				case i%10 == 1:
					tk["createdAt"], tk["lastUsedAt"] = at(-200*audit.Day), at(-100*audit.Day)
					want[sa.FindingStale]++
					want[sa.FindingRotationDue]++
				case i%10 == 2:
					tk["expiresAt"] = at(3 * audit.Day)
					want[sa.FindingExpiring]++
				case i%10 == 3:
					tk["createdAt"] = at(-300 * audit.Day)
					tk["revokedAt"], tk["closedAt"], tk["revokedBy"] = at(-200*audit.Day), at(-200*audit.Day), s("user_admin")
				}
				put(tk)
			}
		}
	}
	w.Flush()
	return want
}

// tableState is every token's and account's findings and every org's report: what a run
// leaves behind, to compare two runs by.
func tableState(tb testing.TB, e *env) map[string]string {
	tb.Helper()
	state := map[string]string{}
	p := dynamodb.NewScanPaginator(e.db.Client, &dynamodb.ScanInput{TableName: aws.String(e.db.Table)})
	for p.HasMorePages() {
		out, err := p.NextPage(e.ctx)
		if err != nil {
			tb.Fatal(err)
		}
		for _, it := range out.Items {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(it, &m); err != nil {
				tb.Fatal(err)
			}
			pk, sk := m["pk"].(string), m["sk"].(string)
			switch {
			case strings.HasPrefix(sk, "TOKEN#"), strings.HasPrefix(sk, "SA#"), sk == "AUDIT#LATEST":
				b, err := json.Marshal(map[string]any{"findings": m["findings"], "closedAt": m["closedAt"], "generatedAt": m["generatedAt"]})
				if err != nil {
					tb.Fatal(err)
				}
				state[pk+"/"+sk] = string(b)
			}
		}
	}
	return state
}

// decodeJSONLine decodes one JSON line of log or metrics output.
func decodeJSONLine(tb testing.TB, line string) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		tb.Fatalf("not a JSON line: %q", line)
	}
	return m
}
