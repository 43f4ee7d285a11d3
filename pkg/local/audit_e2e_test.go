package local_test

import (
	"slices"
	"testing"
	"time"
)

// TestAuditEndToEnd: a used token's last use reaches the list within 5 s; an audit run
// pretending it is 120 days later reports the used token stale and rotation_due and the
// never-used one never_used, on the org's audit route.
func TestAuditEndToEnd(t *testing.T) {
	s, _ := startStack(t)
	admin := devToken(t, s, "org_acme", "admin", "user_alice")
	api := s.URL + "/orgs/org_acme/service-accounts"
	saID := call(t, "POST", api, admin, map[string]string{"name": "github-actions-prod"}).want(t, 201).body["id"].(string)
	used := call(t, "POST", api+"/"+saID+"/tokens", admin, map[string]string{"name": "used"}).want(t, 201).body
	unused := call(t, "POST", api+"/"+saID+"/tokens", admin, map[string]string{"name": "unused"}).want(t, 201).body
	call(t, "GET", s.URL+"/v1/whoami", used["token"].(string), nil).want(t, 200)

	deadline := time.Now().Add(5 * time.Second)
	for listed(t, s, admin, saID)["lastUsedAt"] == nil {
		if time.Now().After(deadline) {
			t.Fatal("lastUsedAt did not reach the list within 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Before any run the report is empty.
	report := call(t, "GET", s.URL+"/orgs/org_acme/audit", admin, nil).want(t, 200).body
	if report["generatedAt"] != nil || len(report["findings"].([]any)) != 0 {
		t.Fatalf("report before any run = %v", report)
	}

	later := time.Now().Add(120 * 24 * time.Hour).UTC()
	summary := call(t, "POST", s.URL+"/local/audit/run", "", map[string]string{"now": later.Format(time.RFC3339)}).want(t, 200).body
	if summary["complete"] != true {
		t.Fatalf("audit summary = %v", summary)
	}
	report = call(t, "GET", s.URL+"/orgs/org_acme/audit", admin, nil).want(t, 200).body
	kinds := map[string][]string{}
	for _, f := range report["findings"].([]any) {
		f := f.(map[string]any)
		id, _ := f["tokenId"].(string)
		kinds[id] = append(kinds[id], f["kind"].(string))
	}
	for _, tc := range []struct {
		token string
		want  []string
	}{
		{used["id"].(string), []string{"stale", "rotation_due"}},
		{unused["id"].(string), []string{"never_used", "rotation_due"}},
	} {
		for _, k := range tc.want {
			if !slices.Contains(kinds[tc.token], k) {
				t.Errorf("token %s: findings %v lack %s", tc.token, kinds[tc.token], k)
			}
		}
	}
	if generated, _ := report["generatedAt"].(string); generated == "" {
		t.Fatalf("generatedAt = %v", report["generatedAt"])
	}
	// Another org sees none of it.
	other := devToken(t, s, "org_other", "admin", "user_eve")
	call(t, "GET", s.URL+"/orgs/org_acme/audit", other, nil).want(t, 403)
}
