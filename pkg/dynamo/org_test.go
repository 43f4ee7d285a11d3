package dynamo_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testworld"
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
	if err := store.RevokeToken(ctx, "org_gone", "sa_0", "tok_0_00", "u", created); err != nil {
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

// TestStreamFilterMatchesTheLayout: the stream filter of template.yaml's consumer names the
// key prefixes of this package's layout, so that every record ReadRecord acts on reaches it.
// A record under each prefix the filter passes carries a fact; one just outside it, none.
func TestStreamFilterMatchesTheLayout(t *testing.T) {
	var prefixes []string
	for _, e := range testworld.Events(t, "DynamoDB") {
		filters, _ := e.Properties["FilterCriteria"].(map[string]any)
		list, _ := filters["Filters"].([]any)
		for _, f := range list {
			pattern, _ := f.(map[string]any)["Pattern"].(string)
			m := regexp.MustCompile(`"pk":\{"S":\[\{"prefix":"([^"]+)"\}\]\}`).FindStringSubmatch(pattern)
			if m == nil {
				t.Fatalf("a stream filter without a key prefix: %s", pattern)
			}
			prefixes = append(prefixes, m[1])
		}
	}
	if len(prefixes) != 2 {
		t.Fatalf("stream filter prefixes %v, want the credentials' and the tombstones'", prefixes)
	}
	str := events.NewStringAttribute
	record := func(pk string) events.DynamoDBEventRecord {
		return events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{
			Keys: map[string]events.DynamoDBAttributeValue{"pk": str(pk)},
			NewImage: map[string]events.DynamoDBAttributeValue{
				"pk": str(pk), "orgId": str("org_a"), "saId": str("sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W"),
				"tokenId": str("tok_01JD5Z4A1B2C3D4E5F6G7H8J9K"), "lastUsedAt": events.NewNumberAttribute("1700000000000"),
			},
		}}
	}
	for _, p := range prefixes {
		if fact, err := dynamo.ReadRecord(record(p + "org_a")); err != nil || (fact.Use == nil && fact.DeletedOrg == "") {
			t.Errorf("a record under %q carries no fact: %+v %v", p, fact, err)
		}
		if fact, err := dynamo.ReadRecord(record("X" + p + "org_a")); err != nil || fact.Use != nil || fact.DeletedOrg != "" {
			t.Errorf("a record outside %q carries %+v %v", p, fact, err)
		}
	}
}
