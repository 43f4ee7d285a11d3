package dynamo_test

import (
	"context"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// usageFixture creates account sa_1 of org_a with token tok_1 and returns the store.
func usageFixture(t *testing.T) (*dynamo.Store, *dynamotest.Tap) {
	t.Helper()
	ctx := context.Background()
	store, db := newStore(t)
	if err := store.CreateServiceAccount(ctx, account("org_a", "sa_1", "x"), "x", 10); err != nil {
		t.Fatal(err)
	}
	tok := sa.Token{ID: "tok_1", OrgID: "org_a", ServiceAccountID: "sa_1", CreatedAt: time.UnixMilli(1_700_000_000_000).UTC(), Hash: "h1", PepperVersion: "1"}
	if err := store.CreateToken(ctx, tok, sa.Credential{OrgID: "org_a", ServiceAccountID: "sa_1", TokenID: "tok_1"}, 10); err != nil {
		t.Fatal(err)
	}
	return store, db.Tap
}

// lastUse reads the last use of account sa_1 and of its token tok_1; nil where never used.
func lastUse(t *testing.T, store *dynamo.Store) (acct, tok *time.Time) {
	t.Helper()
	ctx := context.Background()
	a, err := store.GetServiceAccount(ctx, "org_a", "sa_1")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := store.ListTokens(ctx, "org_a", "sa_1")
	if err != nil || len(tokens) != 1 {
		t.Fatalf("tokens = %v (%v), want tok_1 only", tokens, err)
	}
	return a.LastUsedAt, tokens[0].LastUsedAt
}

func sameTime(got *time.Time, want time.Time) bool {
	if want.IsZero() {
		return got == nil
	}
	return got != nil && got.Equal(want)
}

// TestRollUpUsageOnlyMovesForward: each roll-up is a conditional write, so the final state is
// the latest use whatever the order and number of deliveries.
func TestRollUpUsageOnlyMovesForward(t *testing.T) {
	t1 := time.UnixMilli(1_700_000_060_000).UTC()
	t2 := t1.Add(time.Minute)
	for _, tc := range []struct {
		name string
		ats  []time.Time
		want time.Time
	}{
		{"FirstUse", []time.Time{t1}, t1},
		{"Forward", []time.Time{t1, t2}, t2},
		{"OlderAfterNewerIgnored", []time.Time{t2, t1}, t2},
		{"Replay", []time.Time{t1, t1, t1}, t1},
		{"ReplayAfterNewer", []time.Time{t1, t2, t1}, t2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := usageFixture(t)
			for _, at := range tc.ats {
				if err := store.RollUpUsage(context.Background(), "org_a", "sa_1", "tok_1", at); err != nil {
					t.Fatal(err)
				}
			}
			acct, tok := lastUse(t, store)
			if !sameTime(acct, tc.want) || !sameTime(tok, tc.want) {
				t.Fatalf("account %v, token %v; want both %v", acct, tok, tc.want)
			}
		})
	}
}

// TestRollUpUsageOfGoneItems: a roll-up for a deleted account or token succeeds, so its stream
// record is not retried forever, and creates nothing.
func TestRollUpUsageOfGoneItems(t *testing.T) {
	ctx := context.Background()
	at := time.UnixMilli(1_700_000_060_000).UTC()

	t.Run("UnknownToken", func(t *testing.T) {
		store, _ := usageFixture(t)
		if err := store.RollUpUsage(ctx, "org_a", "sa_1", "tok_gone", at); err != nil {
			t.Fatal(err)
		}
		acct, tok := lastUse(t, store) // fails unless tok_1 is still the only token
		if !sameTime(acct, at) || tok != nil {
			t.Fatalf("account %v, token %v; want the account's use recorded and tok_1 untouched", acct, tok)
		}
	})
	for _, tc := range []struct {
		name   string
		before func(*dynamo.Store) error
		saID   string
	}{
		{"UnknownAccount", func(*dynamo.Store) error { return nil }, "sa_gone"},
		{"DeletedAccount", func(s *dynamo.Store) error { return s.DeleteServiceAccount(ctx, "org_a", "sa_1", "u", at) }, "sa_1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := usageFixture(t)
			if err := tc.before(store); err != nil {
				t.Fatal(err)
			}
			if err := store.RollUpUsage(ctx, "org_a", tc.saID, "tok_1", at); err != nil {
				t.Fatal(err)
			}
			if _, err := store.GetServiceAccount(ctx, "org_a", tc.saID); sa.ErrorCode(err) != sa.ENOTFOUND {
				t.Fatalf("roll-up created account %s: %v", tc.saID, err)
			}
			if tokens, err := store.ListTokens(ctx, "org_a", tc.saID); err != nil || len(tokens) != 0 {
				t.Fatalf("roll-up created tokens %v (%v)", tokens, err)
			}
		})
	}
}

// TestRollUpUsageFault: a DynamoDB fault is EUNAVAILABLE, which the stream consumer reports
// for a retry, and nothing is written.
func TestRollUpUsageFault(t *testing.T) {
	store, tap := usageFixture(t)
	tap.FailAll()
	err := store.RollUpUsage(context.Background(), "org_a", "sa_1", "tok_1", time.UnixMilli(1_700_000_060_000))
	if sa.ErrorCode(err) != sa.EUNAVAILABLE {
		t.Fatalf("code %q (%v), want %q", sa.ErrorCode(err), err, sa.EUNAVAILABLE)
	}
	tap.Fail(nil)
	if acct, tok := lastUse(t, store); acct != nil || tok != nil {
		t.Fatalf("account %v, token %v after a fault; want nothing written", acct, tok)
	}
}
