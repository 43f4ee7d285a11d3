package local_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// readmeBlock returns the fenced block that follows marker in the README.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), "<!-- "+marker+" -->")
	if !ok {
		t.Fatalf("README has no %q block", marker)
	}
	_, body, _ := strings.Cut(strings.TrimLeft(after, "\n"), "\n") // past the opening fence
	body, _, ok = strings.Cut(body, "\n```")                       // the closing fence
	if !ok {
		t.Fatalf("README's %q block is not closed", marker)
	}
	return body
}

// TestReadmeQuickStart runs the README's quick start, exactly as written but for the port,
// against the local stack, and checks what the README says it shows.
func TestReadmeQuickStart(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quick start needs %s: %v", tool, err)
		}
	}
	s, _ := startStack(t)
	script := strings.ReplaceAll(readmeBlock(t, "quickstart"), "http://127.0.0.1:3000", s.URL)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the quick start failed: %v\n%s", err, out)
	}
	text := strings.TrimSpace(string(out))
	for _, want := range []string{`"principalType": "service_account"`, `"serviceAccountName": "claude-code-dev-team"`,
		`"name": "claude-code-dev-team"`, `"activeTokens": 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %s:\n%s", want, text)
		}
	}
	if !strings.Contains(text, "\"activeTokens\": 1,\n  \"lastUsedAt\": \"20") {
		t.Errorf("last use did not appear in the listing:\n%s", text)
	}
	if lines := strings.Split(text, "\n"); lines[len(lines)-1] != "401" {
		t.Errorf("the call after revoke printed %q, want 401", lines[len(lines)-1])
	}
}

// TestReadmeMCPConfiguration: the README's MCP configuration (the product's, pointed at the
// local stack) works as written with the official MCP client.
func TestReadmeMCPConfiguration(t *testing.T) {
	s, _ := startStack(t)
	var cfg struct {
		MCPServers map[string]struct {
			Type    string
			URL     string
			Headers map[string]string
		} `json:"mcpServers"`
	}
	if err := json.Unmarshal([]byte(readmeBlock(t, "mcp-config")), &cfg); err != nil {
		t.Fatal(err)
	}
	server, ok := cfg.MCPServers["opentrace"]
	if !ok || server.Type != "http" {
		t.Fatalf("configuration = %+v", cfg)
	}
	admin := devToken(t, s, "org_acme", "admin", "user_alice")
	saID := call(t, "POST", s.URL+"/orgs/org_acme/service-accounts", admin, map[string]string{"name": "claude-code"}).want(t, 201).body["id"].(string)
	secret := call(t, "POST", s.URL+"/orgs/org_acme/service-accounts/"+saID+"/tokens", admin, nil).want(t, 201).body["token"].(string)
	headers := map[string]string{}
	for k, v := range server.Headers {
		headers[k] = os.Expand(v, func(name string) string { // ${OPENTRACE_API_TOKEN}, as MCP clients expand it
			if name == "OPENTRACE_API_TOKEN" {
				return secret
			}
			return ""
		})
	}
	ctx := context.Background()
	session, err := mcpConnect(ctx, strings.Replace(server.URL, "http://127.0.0.1:3000", s.URL, 1), headers)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %+v", err, res)
	}
	raw, _ := json.Marshal(res.StructuredContent)
	if !strings.Contains(string(raw), `"serviceAccountId":"`+saID+`"`) {
		t.Fatalf("whoami answered %s", raw)
	}
}
