package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/testkit"
)

// stSeed fixes schemathesis's random choices, so a failure found once is found again by the
// same command and a green run stays green until the code or the spec changes.
const stSeed = "20261128"

// stMaxExamples bounds the test cases per operation and phase: 12 operations then run in well
// under two minutes on two cores, race detector included.
const stMaxExamples = "25"

// TestSchemathesis runs schemathesis against the local stack with openapi.yaml: generated
// valid and invalid requests to every operation as an org_acme admin, each answer checked
// for server errors and for conformance to the contract (status, content type, headers,
// body), invalid input refused and valid input accepted, credentials enforced.
//
// Path parameters draw on real ids most of the time, so that generated requests reach the
// functions' logic instead of stopping at "not found": an account with a token that stays,
// and accounts that the DELETE operation may consume. The list's cursor is a real one: a
// generated cursor is a forged one, which the API rightly refuses.
//
// /mcp/v1 stays in the run: schemathesis's JSON-RPC bodies still show that the endpoint
// never fails with a 5xx and answers only documented statuses, media types and shapes. Only
// the checks that judge whether a body should have been accepted are off there, since the
// MCP SDK, not the contract, decides that; GET and DELETE there are expected to be 405.
// The checks left out everywhere, and why, are in stConfig.
func TestSchemathesis(t *testing.T) {
	bin := testkit.Installed(t, "schemathesis", "SCHEMATHESIS", "../../.venv/bin/schemathesis")
	spec, err := filepath.Abs(specPath)
	if err != nil {
		t.Fatal(err)
	}
	s, logs := startStack(t)
	admin := devToken(t, s, "org_acme", "admin", "user_alice")
	const a = "/orgs/org_acme/service-accounts"
	create := func(name string) string {
		t.Helper()
		return call(t, "POST", s.URL+a, admin, map[string]string{"name": name}).want(t, 201).body["id"].(string)
	}
	saID := create("claude-code-dev-team")
	tokenID := call(t, "POST", s.URL+a+"/"+saID+"/tokens", admin, map[string]any{"name": "laptop"}).want(t, 201).body["id"].(string)
	doomed := []string{create("jenkins-legacy"), create("circleci-old"), create("zapier-sync")}
	cursor, _ := call(t, "GET", s.URL+a+"?limit=1", admin, nil).want(t, 200).body["nextCursor"].(string)
	if cursor == "" {
		t.Fatal("a page of one out of four accounts has no nextCursor")
	}

	dir := t.TempDir()
	config := filepath.Join(dir, "schemathesis.toml")
	if err := os.WriteFile(config, []byte(stConfig(saID, tokenID, cursor, doomed)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config-file", config, "run", spec,
		"--url", s.URL,
		"--header", "Authorization: Bearer "+admin,
		"--seed", stSeed,
		"--max-examples", stMaxExamples,
		"--generation-database", "none", // nothing written to the work tree, nothing carried between runs
		"--no-color",
	)
	cmd.Dir = dir // the working directory is where schemathesis would leave any file
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("schemathesis failed after %s (%v):\n%s\nthe stack's errors:\n%s", time.Since(start).Round(time.Second), err, out, stErrors(logs.String()))
	}
	t.Logf("schemathesis passed in %s: %s", time.Since(start).Round(time.Second), stSummary(string(out)))
}

// stConfig is the schemathesis configuration: which ids fill the path parameters, and how
// /mcp/v1 is called.
func stConfig(saID, tokenID, cursor string, doomed []string) string {
	q := func(v any) string { b, _ := json.Marshal(v); return string(b) } // a JSON string or array is valid TOML
	return fmt.Sprintf(`
[dictionaries.orgs]
values = ["org_acme"]
[dictionaries.accounts]
values = [%s]
[dictionaries.doomed]
values = %s
[dictionaries.tokens]
values = [%s]
[dictionaries.cursors]
values = [%s]

# Every check runs but two that say nothing about this API:
#   - unsupported_method expects 405 for methods the contract does not list, but API Gateway
#     answers any method a resource lacks with its MISSING_AUTHENTICATION_TOKEN Gateway
#     Response (404 here) before any function runs; no contract can change that.
#   - object_level_authorization needs a second identity from a Web Fuzzing Commons auth
#     file; tenant isolation has its own tests (isolation_test.go), and the OpenAPI test
#     refuses another org's admin on every route.
# They are set here rather than with --checks, which would override the per-operation
# settings below.
[checks]
unsupported_method = { enabled = false }
object_level_authorization = { enabled = false }

[parameters]
"path.orgId" = { dictionary = "orgs", probability = 0.9 }
"path.saId" = { dictionary = "accounts", probability = 0.8 }
"path.tokenId" = { dictionary = "tokens", probability = 0.8 }
"query.cursor" = { dictionary = "cursors", probability = 1.0 }

# Valid ids for DELETE are only ever the doomed accounts: a binding overrides the ids
# schemathesis collects from responses, which would otherwise include the account above and
# leave every later token operation with nothing to find.
[[operations]]
include-operation-id = "deleteServiceAccount"
parameters = { "path.saId" = { dictionary = "doomed", probability = 1.0 } }

# The transport refuses requests without this Accept; a client that omits it gets a
# documented 400, which says nothing about the rest of the request.
[[operations]]
include-path = "/mcp/v1"
headers = { Accept = "application/json, text/event-stream" }

# The contract types JSON-RPC loosely (MCP owns the shapes), and the MCP SDK, not this
# project, decides which messages it takes: a schema-valid message may be refused (an unknown
# method is a documented 400) and a malformed client response is ignored (202).
[[operations]]
include-operation-id = "mcp"
checks = { positive_data_acceptance = { enabled = false }, negative_data_rejection = { enabled = false } }

[[operations]]
include-operation-id = ["mcpGet", "mcpDelete"]
checks = { positive_data_acceptance = { expected-statuses = ["405"] } }
`, q(saID), q(doomed), q(tokenID), q(cursor))
}

// stSummary picks the counts out of schemathesis's summary, for the test log.
func stSummary(out string) string {
	var parts []string
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`Tested: \d+`),
		regexp.MustCompile(`\d+ generated[^\n]*`),
		regexp.MustCompile(`Scenarios:\s+\d+`),
	} {
		if m := re.FindString(out); m != "" {
			parts = append(parts, strings.Join(strings.Fields(m), " "))
		}
	}
	return strings.Join(parts, "; ")
}

// stErrors returns the error lines of the stack's log: a 5xx's cause is there, not in the
// response.
func stErrors(log string) string {
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"level":"ERROR"`) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
