package local_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/opentrace/service-accounts/pkg/local"
)

// TestSeedFlow drives the product page's flow end to end over HTTP against the local stack:
// create a service account, generate a token, use it (API and MCP), see last use, revoke,
// delete — asserting every status and body field of the contract.
func TestSeedFlow(t *testing.T) {
	s, _ := startStack(t)
	ctx := context.Background()
	api := s.URL + "/orgs/org_acme/service-accounts"
	admin := devToken(t, s, "org_acme", "admin", "user_alice")
	member := devToken(t, s, "org_acme", "member", "user_bob")

	// Create.
	acct := call(t, "POST", api, admin, map[string]string{"name": "claude-code-dev-team", "description": "Claude Code for the dev team"}).want(t, 201).body
	saID, _ := acct["id"].(string)
	if !strings.HasPrefix(saID, "sa_") || acct["name"] != "claude-code-dev-team" || acct["createdBy"] != "user_alice" ||
		acct["activeTokens"] != 0.0 || acct["lastUsedAt"] != nil || len(acct["warnings"].([]any)) != 0 {
		t.Fatalf("created %v", acct)
	}
	if _, err := time.Parse(time.RFC3339, acct["createdAt"].(string)); err != nil {
		t.Fatalf("createdAt: %v", err)
	}
	call(t, "POST", api, admin, map[string]string{"name": "CLAUDE-CODE-DEV-TEAM"}).want(t, 409)
	call(t, "POST", api, member, map[string]string{"name": "x"}).want(t, 403)

	// Generate: the token appears in this response only.
	gen := call(t, "POST", api+"/"+saID+"/tokens", admin, map[string]any{"name": "laptop", "expiresInDays": 90}).want(t, 201)
	if gen.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control = %q", gen.header.Get("Cache-Control"))
	}
	secret, _ := gen.body["token"].(string)
	tokenID, _ := gen.body["id"].(string)
	if !strings.HasPrefix(secret, "otsa_") || len(secret) != 43 || gen.body["status"] != "active" || gen.body["hint"] != "otsa_…"+secret[39:] {
		t.Fatalf("generated %v", gen.body)
	}
	for _, path := range []string{api, api + "/" + saID, api + "/" + saID + "/tokens"} {
		if r := call(t, "GET", path, member, nil).want(t, 200); strings.Contains(r.raw, secret) || strings.Contains(r.raw, secret[5:20]) {
			t.Fatalf("%s shows the token again", path)
		}
	}
	if n := listed(t, s, admin, saID)["activeTokens"]; n != 1.0 {
		t.Fatalf("activeTokens = %v, want 1", n)
	}

	// Use it: the API and the MCP endpoint.
	who := call(t, "GET", s.URL+"/v1/whoami", secret, nil).want(t, 200).body
	if who["principalType"] != "service_account" || who["orgId"] != "org_acme" || who["serviceAccountId"] != saID ||
		who["serviceAccountName"] != "claude-code-dev-team" || who["tokenId"] != tokenID {
		t.Fatalf("whoami %v", who)
	}
	session, err := mcpConnect(ctx, s.URL+"/mcp/v1", map[string]string{"Authorization": "Bearer " + secret})
	if err != nil {
		t.Fatal(err)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("whoami tool: %v %+v", err, res)
	}
	raw, _ := json.Marshal(res.StructuredContent)
	if !strings.Contains(string(raw), `"tokenId":"`+tokenID+`"`) || !strings.Contains(string(raw), `"orgId":"org_acme"`) {
		t.Fatalf("whoami tool answered %s", raw)
	}
	session.Close()

	// Last use reaches the list through the stream within 5 s.
	deadline := time.Now().Add(5 * time.Second)
	for listed(t, s, admin, saID)["lastUsedAt"] == nil {
		if time.Now().After(deadline) {
			t.Fatal("lastUsedAt did not appear within 5 s of use")
		}
		time.Sleep(100 * time.Millisecond)
	}
	tokens := call(t, "GET", api+"/"+saID+"/tokens", admin, nil).want(t, 200).body["items"].([]any)
	if tokens[0].(map[string]any)["lastUsedAt"] == nil {
		t.Fatalf("the token's lastUsedAt is still null: %v", tokens)
	}

	// A second token; then revoke the first: the very next call with it is 401.
	second := call(t, "POST", api+"/"+saID+"/tokens", admin, nil).want(t, 201).body["token"].(string)
	if n := listed(t, s, admin, saID)["activeTokens"]; n != 2.0 {
		t.Fatalf("activeTokens = %v, want 2", n)
	}
	call(t, "DELETE", api+"/"+saID+"/tokens/"+tokenID, admin, nil).want(t, 204)
	r := call(t, "GET", s.URL+"/v1/whoami", secret, nil).want(t, 401)
	if r.header.Get("WWW-Authenticate") != "Bearer" || r.body["message"] != "Unauthorized" {
		t.Fatalf("401 = %v %s", r.header, r.raw)
	}
	if _, err := mcpConnect(ctx, s.URL+"/mcp/v1", map[string]string{"Authorization": "Bearer " + secret}); err == nil ||
		!strings.Contains(err.Error(), "Unauthorized") {
		t.Fatalf("the MCP client with a revoked token: %v, want a 401", err)
	}
	call(t, "DELETE", api+"/"+saID+"/tokens/"+tokenID, admin, nil).want(t, 204) // again: 204
	if n := listed(t, s, admin, saID)["activeTokens"]; n != 1.0 {
		t.Fatalf("activeTokens = %v, want 1", n)
	}
	call(t, "GET", s.URL+"/v1/whoami", second, nil).want(t, 200)

	// Delete the account: every token of it is 401 at once.
	call(t, "DELETE", api+"/"+saID, admin, nil).want(t, 204)
	call(t, "GET", s.URL+"/v1/whoami", second, nil).want(t, 401)
	call(t, "GET", api+"/"+saID, admin, nil).want(t, 404)
	call(t, "DELETE", api+"/"+saID, admin, nil).want(t, 404)
}

// listed returns the account as the list shows it.
func listed(t *testing.T, s *local.Stack, admin, saID string) map[string]any {
	t.Helper()
	items := call(t, "GET", s.URL+"/orgs/org_acme/service-accounts", admin, nil).want(t, 200).body["items"].([]any)
	for _, it := range items {
		if m := it.(map[string]any); m["id"] == saID {
			return m
		}
	}
	t.Fatalf("%s is not listed", saID)
	return nil
}
