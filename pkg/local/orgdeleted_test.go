package local_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/local"
)

// TestOrgDeletedAtTheIdentityProvider: the provider's signed organization.deleted reaches the
// webhook route (no authorizer), the org gets its tombstone, and the table's stream starts the
// sweep: every token of the org is refused within 60 s of the answer (here the local endpoint
// answers once the sweep is done), every write in the org is 403 "organization deleted", other
// orgs are untouched, a second delivery redoes nothing, and the first audit after the retention
// period purges the org's data while its tombstone keeps refusing writes.
func TestOrgDeletedAtTheIdentityProvider(t *testing.T) {
	s, _ := startStack(t)
	api := s.URL + "/orgs/org_gone/service-accounts"
	admin := devToken(t, s, "org_gone", "admin", "user_alice")
	var tokens []string
	var saID, tokenID string
	for _, name := range []string{"claude-code", "ci-deploy"} {
		saID = call(t, "POST", api, admin, map[string]string{"name": name}).want(t, 201).body["id"].(string)
		for range 2 {
			issued := call(t, "POST", api+"/"+saID+"/tokens", admin, nil).want(t, 201).body
			tokens = append(tokens, issued["token"].(string))
			tokenID = issued["id"].(string)
		}
	}
	other := devToken(t, s, "org_stays", "admin", "user_bob")
	otherSA := call(t, "POST", s.URL+"/orgs/org_stays/service-accounts", other, map[string]string{"name": "claude-code"}).want(t, 201).body["id"].(string)
	otherToken := call(t, "POST", s.URL+"/orgs/org_stays/service-accounts/"+otherSA+"/tokens", other, nil).want(t, 201).body["token"].(string)
	for _, tok := range tokens {
		call(t, "GET", s.URL+"/v1/whoami", tok, nil).want(t, 200)
	}

	start := time.Now()
	done := call(t, "POST", s.URL+"/local/identity/org-deleted", "", map[string]string{"org": "org_gone"}).want(t, 200).body
	elapsed := time.Since(start)
	if done["status"] != 200.0 || done["revoked"] != 4.0 || done["webhook"].(map[string]any)["repeated"] != false {
		t.Fatalf("org-deleted: %v", done)
	}
	if elapsed > time.Minute {
		t.Fatalf("the sweep took %s, want within 60 s", elapsed)
	}
	t.Logf("webhook and sweep of 4 tokens: %s", elapsed.Round(time.Millisecond))
	for _, tok := range tokens {
		call(t, "GET", s.URL+"/v1/whoami", tok, nil).want(t, 401)
	}
	call(t, "GET", s.URL+"/v1/whoami", otherToken, nil).want(t, 200)

	for _, w := range []struct{ method, path string }{
		{"POST", ""}, {"POST", "/" + saID + "/tokens"}, {"DELETE", "/" + saID + "/tokens/" + tokenID}, {"DELETE", "/" + saID},
	} {
		r := call(t, w.method, api+w.path, admin, map[string]string{"name": "after"}).want(t, 403)
		if r.header.Get("Content-Type") != "application/problem+json" || r.body["detail"] != "organization deleted" {
			t.Fatalf("%s %s: %s %s", w.method, w.path, r.header.Get("Content-Type"), r.raw)
		}
	}
	call(t, "POST", s.URL+"/orgs/org_stays/service-accounts", other, map[string]string{"name": "still-here"}).want(t, 201)

	// The provider delivers again (a retry): nothing is redone.
	again := call(t, "POST", s.URL+"/local/identity/org-deleted", "", map[string]string{"org": "org_gone"}).want(t, 200).body
	if again["webhook"].(map[string]any)["repeated"] != true || again["revoked"] != 4.0 {
		t.Fatalf("second delivery: %v", again)
	}
	if n := countItems(t, s, "ORG#org_gone", "organization.deleted"); n != 1 {
		t.Fatalf("%d organization.deleted events, want 1", n)
	}

	// Within the retention period the data stays; after it, the audit purges it.
	run := func(at time.Time) map[string]any {
		return call(t, "POST", s.URL+"/local/audit/run", "", map[string]string{"now": at.Format(time.RFC3339)}).want(t, 200).body
	}
	if sum := run(time.Now().Add(29 * 24 * time.Hour)); sum["purged"] != 0.0 || countItems(t, s, "ORG#org_gone", "") == 0 {
		t.Fatalf("before the retention period ends: %v", sum)
	}
	if sum := run(time.Now().Add(31 * 24 * time.Hour)); sum["purged"] != 1.0 {
		t.Fatalf("after the retention period: %v", sum)
	}
	if n := countItems(t, s, "ORG#org_gone", ""); n != 0 {
		t.Fatalf("%d items of the deleted org left after the purge", n)
	}
	if n := countItems(t, s, "ORG#org_stays", ""); n == 0 {
		t.Fatal("the purge took another org's data")
	}
	call(t, "POST", api, admin, map[string]string{"name": "after-the-purge"}).want(t, 403)
	if sum := run(time.Now().Add(32 * 24 * time.Hour)); sum["purged"] != 0.0 {
		t.Fatalf("a purged org purged again: %v", sum)
	}
}

// countItems counts the items of a partition, or of its events of one action.
func countItems(t *testing.T, s *local.Stack, pk, action string) int {
	t.Helper()
	in := &dynamodb.QueryInput{
		TableName: aws.String(s.Table), KeyConditionExpression: aws.String("pk = :pk"), ConsistentRead: aws.Bool(true),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: pk}},
	}
	if action != "" {
		in.FilterExpression = aws.String("#action = :action")
		in.ExpressionAttributeNames = map[string]string{"#action": "action"}
		in.ExpressionAttributeValues[":action"] = &types.AttributeValueMemberS{Value: action}
	}
	n := 0
	p := dynamodb.NewQueryPaginator(s.DB, in)
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Items)
	}
	return n
}
