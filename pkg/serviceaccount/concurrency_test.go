package serviceaccount_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Repetitions of each race. Each repetition is a fresh interleaving on a fresh table; together
// with -race they catch a cap, counter or revocation that holds only by luck.
const raceRounds = 20

// TestConcurrentGenerateHoldsCap: 50 concurrent generates on an account with cap 10 → exactly
// 10 succeed, the rest fail with the cap error, and the counter reads 10.
func TestConcurrentGenerateHoldsCap(t *testing.T) {
	for round := range raceRounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			e := newEnv(t)
			acct := e.create(t, "org_a", "claude-code")
			var wg sync.WaitGroup
			errs := make([]error, 50)
			for i := range errs {
				wg.Go(func() {
					_, _, errs[i] = e.svc.GenerateToken(e.ctx, "org_a", acct.ID, "u", sa.GenerateInput{})
				})
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch sa.ErrorCode(err) {
				case "":
					ok++
				case sa.ECONFLICT:
				default:
					t.Fatalf("unexpected error: %v", err)
				}
			}
			got, err := e.store.GetServiceAccount(e.ctx, "org_a", acct.ID)
			tokens, _ := e.store.ListTokens(e.ctx, "org_a", acct.ID)
			if ok != 10 || err != nil || got.ActiveTokens != 10 || len(tokens) != 10 {
				t.Fatalf("successes=%d counter=%d tokens=%d err=%v, want 10/10/10", ok, got.ActiveTokens, len(tokens), err)
			}
		})
	}
}

// TestDeleteRacingGenerate: whatever the interleaving, once the delete has returned no token
// of the account authenticates, and only the audit trail remains.
func TestDeleteRacingGenerate(t *testing.T) {
	for round := range raceRounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			e := newEnv(t)
			acct := e.create(t, "org_a", "claude-code")
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				issued  []string
				delErr  error
				started = make(chan struct{})
			)
			for range 8 {
				wg.Go(func() {
					<-started
					_, secret, err := e.svc.GenerateToken(e.ctx, "org_a", acct.ID, "u", sa.GenerateInput{})
					if err == nil {
						mu.Lock()
						issued = append(issued, secret)
						mu.Unlock()
					} else if c := sa.ErrorCode(err); c != sa.ENOTFOUND {
						t.Errorf("generate: %v", err)
					}
				})
			}
			wg.Go(func() {
				<-started
				delErr = e.svc.Delete(e.ctx, "org_a", acct.ID, "u")
			})
			close(started)
			wg.Wait()
			if delErr != nil {
				t.Fatalf("delete: %v", delErr)
			}
			for _, s := range issued {
				_, err := e.svc.Authenticate(e.ctx, s)
				wantCode(t, err, sa.EUNAUTHORIZED)
			}
			assertOnlyTrailRemains(t, e, "org_a")
		})
	}
}

// TestConcurrentCreateSameNameDifferentCase: exactly one of two creates whose names differ only
// in case succeeds.
func TestConcurrentCreateSameNameDifferentCase(t *testing.T) {
	for round := range raceRounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			e := newEnv(t)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, name := range []string{"GitHub-Actions-Prod", "github-actions-prod"} {
				wg.Go(func() {
					_, _, errs[i] = e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: name})
				})
			}
			wg.Wait()
			codes := sa.ErrorCode(errs[0]) + "|" + sa.ErrorCode(errs[1])
			if codes != "|"+sa.ECONFLICT && codes != sa.ECONFLICT+"|" {
				t.Fatalf("codes = %q, want exactly one success and one conflict", codes)
			}
			page, err := e.svc.List(e.ctx, "org_a", sa.ListInput{})
			if err != nil || len(page.Items) != 1 {
				t.Fatalf("org holds %d accounts (%v), want 1", len(page.Items), err)
			}
		})
	}
}

// assertOnlyTrailRemains checks that an org whose accounts are all deleted keeps nothing but
// what the design keeps on purpose: the audit trail and its account counter at zero; and that
// no credential of it exists anywhere in the table.
func assertOnlyTrailRemains(t *testing.T, e *env, org string) {
	t.Helper()
	out, err := e.db.Client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.db.Table)})
	if err != nil {
		t.Fatal(err)
	}
	for _, item := range out.Items {
		pk := item["pk"].(*types.AttributeValueMemberS).Value
		sk := item["sk"].(*types.AttributeValueMemberS).Value
		orgOf, _ := item["orgId"].(*types.AttributeValueMemberS)
		switch {
		case pk == "ORG#"+org && strings.HasPrefix(sk, "EVENT#"):
		case pk == "ORG#"+org && sk == "ORG":
			if n := item["accounts"].(*types.AttributeValueMemberN).Value; n != "0" {
				t.Errorf("account counter = %s, want 0", n)
			}
		case pk == "ORG#"+org, orgOf != nil && orgOf.Value == org:
			t.Errorf("left behind: %s %s", pk, sk)
		}
	}
}
