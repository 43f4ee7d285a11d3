package dynamo_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// TestSweepOrgResumes: the sweep of a deleted org revokes every open token of every account in
// pages (an account of 55 tokens: two pages, and one of 3), survives being interrupted midway
// (its transactions failing after the first), and, run again, finishes what it began, counting
// each token once.
// A token closed before the deletion is left as it was; another org is untouched.
func TestSweepOrgResumes(t *testing.T) {
	ctx := context.Background()
	store, db := newStore(t)
	created := time.UnixMilli(1_700_000_000_000).UTC()
	var hashes []string
	for a, org := range []string{"org_gone", "org_gone", "org_stays"} {
		saID := fmt.Sprintf("sa_%d", a)
		if err := store.CreateServiceAccount(ctx, account(org, saID, saID), saID, 10); err != nil {
			t.Fatal(err)
		}
		for i := range []int{55, 3, 2}[a] {
			id := fmt.Sprintf("tok_%d_%02d", a, i)
			tok := sa.Token{ID: id, OrgID: org, ServiceAccountID: saID, CreatedAt: created, Hash: "h" + id, PepperVersion: "1"}
			if err := store.CreateToken(ctx, tok, sa.Credential{OrgID: org, ServiceAccountID: saID, TokenID: id}, 55); err != nil {
				t.Fatal(err)
			}
			if org == "org_gone" {
				hashes = append(hashes, "h"+id)
			}
		}
	}
	if err := store.CloseToken(ctx, "org_gone", "sa_0", "tok_0_00", "u", created, true); err != nil {
		t.Fatal(err)
	}
	at := created.Add(time.Hour)
	if created, err := store.DeleteOrg(ctx, "org_gone", "msg_1", at, at.Add(30*24*time.Hour)); err != nil || !created {
		t.Fatalf("DeleteOrg: %v %v", created, err)
	}

	pages := 0
	db.Tap.Fail(func(c dynamotest.Call) bool {
		if c.Op != "TransactWriteItems" {
			return false
		}
		pages++
		return pages > 1 // the first page goes through, then the sweep's function dies
	})
	if err := store.SweepOrg(ctx, "org_gone", at); sa.ErrorCode(err) != sa.EUNAVAILABLE {
		t.Fatalf("interrupted sweep: %v, want EUNAVAILABLE", err)
	}
	db.Tap.Fail(nil)
	if stone, err := store.GetTombstone(ctx, "org_gone"); err != nil || stone.SweptAt != nil {
		t.Fatalf("after the interruption: %+v %v, want no sweptAt", stone, err)
	}
	if err := store.SweepOrg(ctx, "org_gone", at); err != nil {
		t.Fatalf("resumed sweep: %v", err)
	}
	stone, err := store.GetTombstone(ctx, "org_gone")
	if err != nil || stone.SweptAt == nil || stone.Revoked != 57 {
		t.Fatalf("after the sweep: %+v %v, want sweptAt and 57 revoked", stone, err)
	}
	for _, h := range hashes {
		if _, err := store.LookupToken(ctx, h); sa.ErrorCode(err) != sa.ENOTFOUND {
			t.Fatalf("credential %s survived the sweep: %v", h, err)
		}
	}
	for a := range 2 {
		acct, err := store.GetServiceAccount(ctx, "org_gone", fmt.Sprintf("sa_%d", a))
		if err != nil || acct.ActiveTokens != 0 {
			t.Fatalf("account %d: %+v %v, want 0 active tokens", a, acct, err)
		}
	}
	if old, err := store.ListTokens(ctx, "org_gone", "sa_0"); err != nil || !old[0].RevokedAt.Equal(created) {
		t.Fatalf("the token revoked before the deletion: %+v %v", old[0], err)
	}
	if _, err := store.LookupToken(ctx, "htok_2_00"); err != nil {
		t.Fatalf("another org's token: %v", err)
	}
	if err := store.SweepOrg(ctx, "org_gone", at.Add(time.Hour)); err != nil {
		t.Fatalf("a third sweep: %v", err)
	}
	if again, _ := store.GetTombstone(ctx, "org_gone"); !again.SweptAt.Equal(*stone.SweptAt) || again.Revoked != 57 {
		t.Fatalf("a finished sweep ran again: %+v", again)
	}
}
