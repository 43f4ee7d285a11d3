package dynamo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

var cursorKey = []byte(strings.Repeat("c", 32))

func newStore(t *testing.T) (*dynamo.Store, *dynamotest.DB) {
	t.Helper()
	db := dynamotest.Start(t)
	s, err := dynamo.New(db.Client, db.Table, cursorKey)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func TestNewRejectsShortCursorKey(t *testing.T) {
	if _, err := dynamo.New(nil, "t", []byte("short")); err == nil {
		t.Fatal("a short cursor key must be refused")
	}
}

func account(org, id, name string) sa.ServiceAccount {
	return sa.ServiceAccount{ID: id, OrgID: org, Name: name, CreatedAt: time.UnixMilli(1_700_000_000_000).UTC(), CreatedBy: "u"}
}

// TestDependencyFailuresAreUnavailable: every DynamoDB failure surfaces as EUNAVAILABLE (a 503
// to callers and never an allow), a server fault or throttling, and nothing is written.
func TestDependencyFailuresAreUnavailable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		inject func(*dynamotest.Tap, func(dynamotest.Call) bool)
	}{
		{"InternalServerError", (*dynamotest.Tap).Fail},
		{"Throttled", (*dynamotest.Tap).Throttle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, db := newStore(t)
			tc.inject(db.Tap, func(dynamotest.Call) bool { return true })
			calls := map[string]error{
				"create": store.CreateServiceAccount(ctx, account("org_a", "sa_1", "x"), "x", 10),
				"lookup": func() error { _, err := store.LookupToken(ctx, "abc"); return err }(),
				"list":   func() error { _, err := store.ListServiceAccounts(ctx, "org_a", 10, ""); return err }(),
				"touch":  store.TouchToken(ctx, "abc", time.Now(), time.Now()),
			}
			for op, err := range calls {
				if sa.ErrorCode(err) != sa.EUNAVAILABLE {
					t.Errorf("%s: code %q (%v), want %q", op, sa.ErrorCode(err), err, sa.EUNAVAILABLE)
				}
			}
			db.Tap.Fail(nil)
			page, err := store.ListServiceAccounts(ctx, "org_a", 10, "")
			if err != nil || len(page.Items) != 0 {
				t.Fatalf("after the fault: %v %v, want nothing written", page.Items, err)
			}
		})
	}
}

func TestTouchOnlyMovesForward(t *testing.T) {
	ctx := context.Background()
	store, _ := newStore(t)
	if err := store.CreateServiceAccount(ctx, account("org_a", "sa_1", "x"), "x", 10); err != nil {
		t.Fatal(err)
	}
	created := time.UnixMilli(1_700_000_000_000).UTC()
	tok := sa.Token{ID: "tok_1", OrgID: "org_a", ServiceAccountID: "sa_1", CreatedAt: created, Hash: "h1", PepperVersion: "1"}
	if err := store.CreateToken(ctx, tok, sa.Credential{OrgID: "org_a", ServiceAccountID: "sa_1", TokenID: "tok_1"}, 10); err != nil {
		t.Fatal(err)
	}
	t1 := created.Add(time.Hour)
	for _, step := range []struct {
		at, notBefore time.Time
		want          time.Time
	}{
		{t1, t1.Add(-time.Minute), t1},                                          // first use
		{t1.Add(30 * time.Second), t1.Add(-30 * time.Second), t1},               // inside the interval: kept
		{t1.Add(2 * time.Minute), t1.Add(time.Minute), t1.Add(2 * time.Minute)}, // after it: moved
	} {
		if err := store.TouchToken(ctx, "h1", step.at, step.notBefore); err != nil {
			t.Fatal(err)
		}
		cred, err := store.LookupToken(ctx, "h1")
		if err != nil || cred.LastUsedAt == nil || !cred.LastUsedAt.Equal(step.want) {
			t.Fatalf("lastUsedAt = %v (%v), want %v", cred.LastUsedAt, err, step.want)
		}
	}
	// A credential that is gone is not an error and is not recreated.
	if err := store.TouchToken(ctx, "gone", t1, t1); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LookupToken(ctx, "gone"); sa.ErrorCode(err) != sa.ENOTFOUND {
		t.Fatalf("touch recreated a credential: %v", err)
	}
}

// TestCorruptCredentialIsInternal: a credential item that is not what the store writes is an
// internal error (the authorizer then fails closed), never a panic or a half-read identity.
func TestCorruptCredentialIsInternal(t *testing.T) {
	ctx := context.Background()
	store, db := newStore(t)
	for name, item := range map[string]map[string]types.AttributeValue{
		"MissingOrg":     {},
		"NumberAsString": {"orgId": &types.AttributeValueMemberN{Value: "1"}},
		"TimeAsString":   {"expiresAt": &types.AttributeValueMemberS{Value: "soon"}},
		"TimeOutOfRange": {"lastUsedAt": &types.AttributeValueMemberN{Value: "1e30"}},
	} {
		t.Run(name, func(t *testing.T) {
			full := map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: "TOKENHASH#" + name}, "sk": &types.AttributeValueMemberS{Value: "TOKENHASH"},
				"orgId": &types.AttributeValueMemberS{Value: "o"}, "saId": &types.AttributeValueMemberS{Value: "s"},
				"saName": &types.AttributeValueMemberS{Value: "n"}, "tokenId": &types.AttributeValueMemberS{Value: "t"},
				"tokenName": &types.AttributeValueMemberS{Value: ""},
			}
			if name == "MissingOrg" {
				delete(full, "orgId")
			}
			for k, v := range item {
				full[k] = v
			}
			if _, err := db.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(db.Table), Item: full}); err != nil {
				t.Fatal(err)
			}
			if _, err := store.LookupToken(ctx, name); sa.ErrorCode(err) != sa.EINTERNAL {
				t.Fatalf("err = %v, want EINTERNAL", err)
			}
		})
	}
}

// TestDeleteFansOutInPages: an account of 100 tokens (twice what one transaction could
// delete) is deleted with every credential and all its metadata, in pages none of which
// exceeds DynamoDB's 100 items, and its one event counts the tokens; a second delete of the
// gone account is ENOTFOUND.
func TestDeleteFansOutInPages(t *testing.T) {
	ctx := context.Background()
	store, db := newStore(t)
	if err := store.CreateServiceAccount(ctx, account("org_a", "sa_1", "big"), "big", 10); err != nil {
		t.Fatal(err)
	}
	created := time.UnixMilli(1_700_000_000_000).UTC()
	const n = 100
	for i := range n {
		id := fmt.Sprintf("tok_%03d", i)
		tok := sa.Token{ID: id, OrgID: "org_a", ServiceAccountID: "sa_1", CreatedAt: created, Hash: "h" + id, PepperVersion: "1"}
		if err := store.CreateToken(ctx, tok, sa.Credential{OrgID: "org_a", ServiceAccountID: "sa_1", TokenID: id}, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.RevokeToken(ctx, "org_a", "sa_1", "tok_000", "u", created); err != nil {
		t.Fatal(err)
	}
	before := db.Tap.Calls("TransactWriteItems")
	if err := store.DeleteServiceAccount(ctx, "org_a", "sa_1", "u", created.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// One transaction takes the lock, three pages of at most 49 tokens follow, one ends it.
	if got := db.Tap.Calls("TransactWriteItems") - before; got != 5 {
		t.Errorf("%d transactions, want 5", got)
	}
	for i := range n {
		if _, err := store.LookupToken(ctx, fmt.Sprintf("htok_%03d", i)); sa.ErrorCode(err) != sa.ENOTFOUND {
			t.Fatalf("credential %d survived the delete: %v", i, err)
		}
	}
	out, err := db.Client.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(db.Table)})
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, it := range out.Items {
		switch sk := it["sk"].(*types.AttributeValueMemberS).Value; {
		case strings.HasPrefix(sk, "EVENT#"):
			if it["action"].(*types.AttributeValueMemberS).Value != "service_account.deleted" {
				continue
			}
			deleted++
			detail := it["detail"].(*types.AttributeValueMemberM).Value
			if detail["tokens"].(*types.AttributeValueMemberN).Value != fmt.Sprint(n-1) {
				t.Errorf("the event counts %v tokens, want %d open ones", detail["tokens"], n-1)
			}
		case sk == "ORG":
		default:
			t.Errorf("left behind: %s", sk)
		}
	}
	if deleted != 1 {
		t.Errorf("%d service_account.deleted events, want 1", deleted)
	}
	if err := store.DeleteServiceAccount(ctx, "org_a", "sa_1", "u", created.Add(2*time.Hour)); sa.ErrorCode(err) != sa.ENOTFOUND {
		t.Fatalf("second delete: %v, want ENOTFOUND", err)
	}
}
