package dynamo_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
)

// listBenchDB is the real SDK client, counting the items each Query reads: what DynamoDB bills
// a Query for (read units follow the size of the items read, not of the partition).
type listBenchDB struct {
	dynamo.API
	queries, itemsRead atomic.Int64
}

func (c *listBenchDB) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	out, err := c.API.Query(ctx, in, opts...)
	if err == nil {
		c.queries.Add(1)
		c.itemsRead.Add(int64(max(out.ScannedCount, int32(len(out.Items)))))
	}
	return out, err
}

// listBenchOrg is an org seeded with accounts, and the store that lists it.
type listBenchOrg struct {
	org     string
	store   *dynamo.Store
	counter *listBenchDB
}

// listBenchSeed writes accounts of org into db directly with BatchWriteItem, in the item shape
// of accountItem (items.go), with the org's counter item, in key order: minidyn re-sorts its keys
// on every insert, which is cheapest when the new key comes last.
func listBenchSeed(b *testing.B, db *dynamotest.DB, org string, accounts int) {
	b.Helper()
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	w := db.Writer(b)
	put := w.Put
	put(map[string]types.AttributeValue{"pk": s("ORG#" + org), "sk": s("ORG"), "accounts": n(int64(accounts))})
	for i := range accounts {
		saID := fmt.Sprintf("sa_%08d", i)
		name := fmt.Sprintf("integration-%08d", i)
		put(map[string]types.AttributeValue{
			"pk": s("ORG#" + org), "sk": s("SA#" + saID), "type": s("service_account"), "orgId": s(org),
			"saId": s(saID), "name": s(name), "nameKey": s(name), "description": s("CI pipeline for a service"),
			"createdAt": n(created + int64(i)), "createdBy": s("user_admin"), "activeTokens": n(2),
			"lastUsedAt": n(created + 86_400_000),
		})
	}
	w.Flush()
}

func listBenchStore(b *testing.B, db *dynamotest.DB, org string) listBenchOrg {
	b.Helper()
	c := &listBenchDB{API: db.Client}
	store, err := dynamo.New(c, db.Table, []byte(strings.Repeat("c", 32)))
	if err != nil {
		b.Fatal(err)
	}
	return listBenchOrg{org: org, store: store, counter: c}
}

// listBenchPair lists the first page of 50 of big and small alternately in one loop (so both see
// the same machine, and neither always goes first) and reports each one's ns/op, their ratio
// (big over small: the goal is at most 1.5, a page costs what the page holds), and the items
// each Query read.
func listBenchPair(b *testing.B, big, small listBenchOrg) {
	ctx := context.Background()
	list := func(o listBenchOrg) time.Duration {
		start := time.Now()
		page, err := o.store.ListServiceAccounts(ctx, o.org, 50, "")
		d := time.Since(start)
		if err != nil || len(page.Items) != 50 || page.NextCursor == "" {
			b.Fatalf("list %s: %d items, cursor %q, %v", o.org, len(page.Items), page.NextCursor, err)
		}
		return d
	}
	list(big) // the first request of each client opens its connection
	list(small)
	big.counter.queries.Store(0)
	big.counter.itemsRead.Store(0)
	small.counter.queries.Store(0)
	small.counter.itemsRead.Store(0)
	var bigNS, smallNS time.Duration
	odd := false
	b.ReportAllocs()
	for b.Loop() {
		if odd {
			smallNS += list(small)
			bigNS += list(big)
		} else {
			bigNS += list(big)
			smallNS += list(small)
		}
		odd = !odd
	}
	b.ReportMetric(float64(bigNS.Nanoseconds())/float64(b.N), "org10k-ns/op")
	b.ReportMetric(float64(smallNS.Nanoseconds())/float64(b.N), "org100-ns/op")
	b.ReportMetric(float64(bigNS)/float64(smallNS), "ratio")
	b.ReportMetric(float64(big.counter.itemsRead.Load())/float64(big.counter.queries.Load()), "org10k-items/query")
	b.ReportMetric(float64(small.counter.itemsRead.Load())/float64(small.counter.queries.Load()), "org100-items/query")
}

// BenchmarkListFirstPage measures the first page of 50 service accounts of an org of 10,000
// accounts beside that of an org of 100, through the real store, SDK and minidyn.
//
// SeparateTables is the figure with a goal: each org in a table of its own. In DynamoDB a Query
// goes straight to its partition and reads only the items it returns (Limit 51: the page and
// one more to know whether another page exists), so other orgs' items cost it nothing; minidyn
// instead walks its sorted keys from the table's first key until the page is full, so in a
// shared table an org's cost would include every key sorted before it. Separate tables take
// that artefact of the emulator out and leave what the store controls: what it asks for and
// what it decodes.
//
// OneTable shows that artefact with figures: both orgs in one table, the org of 100 sorted after
// the org of 10,000, so minidyn walks 10,000 foreign keys to list 50 of the small org's (its
// ratio falls far below 1 for that reason, which is minidyn's cost and not DynamoDB's).
func BenchmarkListFirstPage(b *testing.B) {
	b.Run("SeparateTables", func(b *testing.B) {
		bigDB, smallDB := dynamotest.Start(b), dynamotest.Start(b)
		listBenchSeed(b, bigDB, "org_big", 10_000)
		listBenchSeed(b, smallDB, "org_small", 100)
		listBenchPair(b, listBenchStore(b, bigDB, "org_big"), listBenchStore(b, smallDB, "org_small"))
	})
	b.Run("OneTable", func(b *testing.B) {
		db := dynamotest.Start(b)
		// "ORG#org_a…" sorts before "ORG#org_z…": the small org's partition comes last.
		listBenchSeed(b, db, "org_a_big", 10_000)
		listBenchSeed(b, db, "org_z_small", 100)
		listBenchPair(b, listBenchStore(b, db, "org_a_big"), listBenchStore(b, db, "org_z_small"))
	})
}
