package local_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/local"
)

// secretWindow is the length of the fragments of a secret that must not leak either: a log
// line or an error body that echoes part of a token is as bad as one that echoes all of it
// once a few lines are put together.
const secretWindow = 16

var (
	// tokenLike finds a service-account token, or enough of one to matter, anywhere in a text.
	// Hints (otsa_… and four characters) do not match: the ellipsis is not base62.
	tokenLike = regexp.MustCompile(`otsa_[0-9A-Za-z]{10,}`)
	// longBase62 finds runs that look like key material: the local pepper is 64 base62
	// characters, an HMAC in hex is 64, a token's body 38. Nothing the system logs on purpose
	// is that long: ids are 26 characters of ULID after their prefix, fingerprints 8.
	longBase62 = regexp.MustCompile(`[0-9A-Za-z]{32,}`)
)

// secSecret is a value that must reach no log line, and no response but the one that
// issued it.
type secSecret struct {
	label string // what it is, for failure messages, which never print the value
	value string
	// issuedBy is the index of the exchange that legitimately carries the value, or -1.
	issuedBy int
	// whole limits the check to the whole value, for one derived from another secret (a
	// mistyped token, a whole JWT) whose pieces are that secret's, or public (a JWT's header).
	whole bool
}

type secExchange struct {
	label string
	r     response
}

// secFlow drives the stack over HTTP and remembers every response and every secret it saw.
type secFlow struct {
	s         *local.Stack
	exchanges []secExchange
	secrets   []secSecret
}

// record keeps r for the leak checks and returns its index.
func (f *secFlow) record(label string, r response) int {
	f.exchanges = append(f.exchanges, secExchange{label, r})
	return len(f.exchanges) - 1
}

// expect records r and fails unless it has status want.
func (f *secFlow) expect(t *testing.T, label string, r response, want int) response {
	t.Helper()
	f.record(label, r)
	if r.status != want {
		t.Fatalf("%s: status %d, want %d: %s", label, r.status, want, r.raw)
	}
	return r
}

func (f *secFlow) secret(label, value string, issuedBy int) {
	f.secrets = append(f.secrets, secSecret{label: label, value: value, issuedBy: issuedBy})
}

// derived records a value checked whole only; see secSecret.whole.
func (f *secFlow) derived(label, value string, issuedBy int) {
	f.secrets = append(f.secrets, secSecret{label: label, value: value, issuedBy: issuedBy, whole: true})
}

// leaks reports whether text holds the secret and how much of it; see leaks.
func (s secSecret) leaks(text string) (string, bool) {
	if s.whole {
		return "the whole value", strings.Contains(text, s.value)
	}
	return leaks(text, s.value)
}

// devToken mints a dashboard JWT and records it, and its signature on its own, as secrets.
func (f *secFlow) devToken(t *testing.T, role, user string) string {
	t.Helper()
	r := call(t, "POST", f.s.URL+"/local/dev-token", "", map[string]string{"org": testOrg, "role": role, "user": user})
	i := f.record("dev-token "+role, r)
	if r.status != 200 {
		t.Fatalf("dev-token: %d %s", r.status, r.raw)
	}
	jwt := r.body["token"].(string)
	// The header and claims of a JWT are not secret (every local JWT shares its header), but
	// the whole of it is a credential, and its signature is what no one else can make.
	f.derived(role+" JWT", jwt, i)
	f.secret(role+" JWT signature", jwt[strings.LastIndexByte(jwt, '.')+1:], i)
	return jwt
}

// generate issues a token and records it as a secret; the response must not be cached by
// anything between the API and the client, since it is the only place the token appears.
func (f *secFlow) generate(t *testing.T, admin, saID, name string, body any) (secret, tokenID string) {
	t.Helper()
	r := call(t, "POST", f.s.URL+"/orgs/"+testOrg+"/service-accounts/"+saID+"/tokens", admin, body)
	i := f.record("generate "+name, r)
	if r.status != 201 {
		t.Fatalf("generate %s: %d %s", name, r.status, r.raw)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("generate %s: Cache-Control = %q, want no-store", name, cc)
	}
	secret = r.body["token"].(string)
	f.secret("token "+name, secret, i)
	return secret, r.body["id"].(string)
}

// TestSecretsNotLeaked runs the whole flow of the product page on the local stack — dev
// tokens, create, generate, use through whoami and MCP, wrong tokens, revoke, the audit,
// delete — and then checks every log line the stack and its functions wrote and every
// response a client received: no token, no JWT, no token hash and nothing shaped like key
// material appears, except a token in the one response that issued it.
func TestSecretsNotLeaked(t *testing.T) {
	s, logs := startStack(t)
	f := &secFlow{s: s}
	ctx := context.Background()
	api := s.URL + "/orgs/" + testOrg + "/service-accounts"

	admin := f.devToken(t, "admin", "user_alice")
	member := f.devToken(t, "member", "user_bob")

	saID := f.expect(t, "create", call(t, "POST", api, admin, map[string]string{"name": "secrets-flow-ci"}), 201).body["id"].(string)
	laptop, laptopID := f.generate(t, admin, saID, "laptop", map[string]any{"name": "laptop", "expiresInDays": 30})
	ci, _ := f.generate(t, admin, saID, "ci", map[string]any{"name": "ci"})
	// The stored form of every token: it must not reach a log line either.
	hashes := tokenHashes(t, s)
	if len(hashes) != 2 {
		t.Fatalf("the table holds %d token hashes, want 2 (one per token)", len(hashes))
	}
	for i, h := range hashes {
		f.secret(fmt.Sprintf("token hash %d", i), h, -1)
	}

	// Reading back never shows a token again.
	for _, path := range []string{api, api + "/" + saID, api + "/" + saID + "/tokens"} {
		f.expect(t, "read "+path+" as member", call(t, "GET", path, member, nil), 200)
	}

	// Use: the API and the MCP endpoint, raw and through the official client.
	for name, tok := range map[string]string{"laptop": laptop, "ci": ci} {
		f.expect(t, "whoami "+name, call(t, "GET", s.URL+"/v1/whoami", tok, nil), 200)
		f.expect(t, "mcp "+name, rpcWhoami(t, s.URL+"/mcp/v1", tok), 200)
	}
	f.expect(t, "whoami admin", call(t, "GET", s.URL+"/v1/whoami", admin, nil), 200)
	f.expect(t, "mcp member", rpcWhoami(t, s.URL+"/mcp/v1", member), 200)
	session, err := mcpConnect(ctx, s.URL+"/mcp/v1", map[string]string{"Authorization": "Bearer " + laptop})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("whoami tool: %v %+v", err, res)
	}
	session.Close()
	// Let the stream deliver the use to the usage function, so its log lines are in too.
	waitLastUsed(t, s, admin, saID)

	// Wrong credentials, and tokens put where ids, cursors and names go: every refusal must
	// leave the submitted value out of its body and out of the logs.
	unknown := unknownToken(t)
	f.secret("unknown token", unknown, -1)
	f.derived("mistyped token", withTypo(laptop), -1)
	tamperedJWT := admin[:len(admin)-4] + "AAAA"
	if tamperedJWT == admin {
		tamperedJWT = admin[:len(admin)-4] + "BBBB"
	}
	f.derived("tampered JWT", tamperedJWT, -1)
	bearer := func(v string) http.Header { return http.Header{"Authorization": {v}} }
	for _, tc := range []struct {
		name string
		do   func() response
		want int
	}{
		{"WhoamiMistyped", func() response { return call(t, "GET", s.URL+"/v1/whoami", withTypo(laptop), nil) }, 401},
		{"WhoamiUnknown", func() response { return call(t, "GET", s.URL+"/v1/whoami", unknown, nil) }, 401},
		{"WhoamiTruncated", func() response { return call(t, "GET", s.URL+"/v1/whoami", laptop[:42], nil) }, 401},
		{"WhoamiBasicScheme", func() response { return exchange(t, "GET", s.URL+"/v1/whoami", bearer("Basic "+laptop), "") }, 401},
		{"WhoamiTwoCredentials", func() response { return exchange(t, "GET", s.URL+"/v1/whoami", bearer("Bearer "+laptop+" "+ci), "") }, 401},
		{"WhoamiTamperedJWT", func() response { return call(t, "GET", s.URL+"/v1/whoami", tamperedJWT, nil) }, 401},
		{"MCPMistyped", func() response { return rpcWhoami(t, s.URL+"/mcp/v1", withTypo(laptop)) }, 401},
		{"TokenOnManagementRoute", func() response { return call(t, "GET", api, laptop, nil) }, 403},
		{"TokenAsOrg", func() response { return call(t, "GET", s.URL+"/orgs/"+laptop+"/service-accounts", admin, nil) }, 403},
		{"TokenAsAccountID", func() response { return call(t, "GET", api+"/"+laptop, admin, nil) }, 404},
		{"TokenAsTokenID", func() response { return call(t, "DELETE", api+"/"+saID+"/tokens/"+laptop, admin, nil) }, 404},
		{"TokenAsCursor", func() response { return call(t, "GET", api+"?cursor="+url.QueryEscape(laptop), admin, nil) }, 400},
		{"TokenInOverlongName", func() response {
			return call(t, "POST", api, admin, map[string]string{"name": laptop + "-" + laptop})
		}, 400},
		{"TokenAsExpiry", func() response {
			return call(t, "POST", api+"/"+saID+"/tokens", admin, map[string]string{"expiresInDays": laptop})
		}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) { f.expect(t, tc.name, tc.do(), tc.want) })
	}

	// Revoke: the very next use is refused.
	f.expect(t, "revoke laptop", call(t, "DELETE", api+"/"+saID+"/tokens/"+laptopID, admin, nil), 204)
	f.expect(t, "whoami revoked", call(t, "GET", s.URL+"/v1/whoami", laptop, nil), 401)
	f.expect(t, "mcp revoked", rpcWhoami(t, s.URL+"/mcp/v1", laptop), 401)

	// The scheduled audit, a year on so that it has findings to report, and its report.
	run := call(t, "POST", s.URL+"/local/audit/run", "", map[string]any{"now": time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339)})
	f.record("audit run", run)
	switch {
	case run.status == 200:
		f.expect(t, "audit report", call(t, "GET", api[:len(api)-len("/service-accounts")]+"/audit", admin, nil), 200)
	case run.status == 404 && strings.Contains(run.raw, "schedules no function"):
		t.Log("the template schedules no audit yet: the audit part of the flow is skipped")
	default:
		t.Fatalf("audit run: %d %s", run.status, run.raw)
	}

	// Delete: the remaining token stops working at once.
	f.expect(t, "delete", call(t, "DELETE", api+"/"+saID, admin, nil), 204)
	f.expect(t, "whoami after delete", call(t, "GET", s.URL+"/v1/whoami", ci, nil), 401)

	// Stop the stack so that everything it would log (the stream, the schedules) is written.
	_ = s.Close()
	out := logs.String()
	for _, want := range []string{`"decision":"allow"`, `"decision":"unauthorized"`, `"function":"UsageFunction"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("the logs lack %s; the capture is not seeing what it should:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	t.Run("Logs", func(t *testing.T) {
		for n, line := range lines {
			where := fmt.Sprintf("log line %d", n+1)
			for _, sec := range f.secrets {
				if what, ok := sec.leaks(line); ok {
					t.Errorf("%s carries %s of the %s", where, what, sec.label)
				}
			}
			assertNoKeyShapes(t, where, line)
		}
		t.Logf("%d log lines checked against %d secrets", len(lines), len(f.secrets))
	})
	t.Run("Responses", func(t *testing.T) {
		for i, ex := range f.exchanges {
			text := exchangeText(ex.r)
			for _, sec := range f.secrets {
				if sec.issuedBy == i {
					continue
				}
				if what, ok := sec.leaks(text); ok {
					t.Errorf("the response to %q (%d) carries %s of the %s", ex.label, ex.r.status, what, sec.label)
				}
			}
			if !strings.HasPrefix(ex.label, "generate ") && tokenLike.MatchString(text) {
				t.Errorf("the response to %q (%d) carries something shaped like a token", ex.label, ex.r.status)
			}
		}
		t.Logf("%d responses checked against %d secrets", len(f.exchanges), len(f.secrets))
	})
}

// TestSecretsFailClosed: when DynamoDB fails, a valid token is neither allowed nor refused as
// if it were bad (a 401 would make a client throw it away): the answer is a 5xx that carries no
// credential and no internals, no token is issued, and the logs hold no secret. Once the
// store is back, the same token works.
func TestSecretsFailClosed(t *testing.T) {
	tap := &dynamotest.Tap{}
	s, logs := startStack(t, func(o *local.Options) {
		o.Transport = func(next http.RoundTripper) http.RoundTripper { tap.Next = next; return tap }
	})
	f := &secFlow{s: s}
	api := s.URL + "/orgs/" + testOrg + "/service-accounts"
	admin := f.devToken(t, "admin", "user_alice")
	saID := f.expect(t, "create", call(t, "POST", api, admin, map[string]string{"name": "secrets-fail-closed"}), 201).body["id"].(string)
	tok, _ := f.generate(t, admin, saID, "ci", nil)

	tap.FailAll()
	for _, tc := range []struct {
		name string
		do   func() response
		body string // the exact body, when it is the gateway's
	}{
		{"WhoamiWithToken", func() response { return call(t, "GET", s.URL+"/v1/whoami", tok, nil) }, `{"message":"Internal server error"}`},
		{"MCPWithToken", func() response { return rpcWhoami(t, s.URL+"/mcp/v1", tok) }, `{"message":"Internal server error"}`},
		{"ListAsAdmin", func() response { return call(t, "GET", api, admin, nil) }, ""},
		{"GenerateAsAdmin", func() response { return call(t, "POST", api+"/"+saID+"/tokens", admin, nil) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.do()
			f.record(tc.name, r)
			if r.status < 500 {
				t.Fatalf("status %d with DynamoDB down, want a 5xx: %s", r.status, r.raw)
			}
			// A failing authorizer is API Gateway's 500 with the template's DEFAULT_5XX body.
			if tc.body != "" && (r.status != 500 || r.raw != tc.body) {
				t.Errorf("%d %q, want the gateway's 500 %s", r.status, r.raw, tc.body)
			}
			if tokenLike.MatchString(r.raw) {
				t.Errorf("a token was issued while the store is down: the credential may not be stored")
			}
			for _, internal := range []string{"dynamodb", "DynamoDB", "InternalServerError", s.Table, "TOKENHASH", "ORG#"} {
				if strings.Contains(r.raw, internal) {
					t.Errorf("the 5xx body shows internals (%q): %s", internal, r.raw)
				}
			}
		})
	}
	tap.Fail(nil)
	f.expect(t, "whoami after recovery", call(t, "GET", s.URL+"/v1/whoami", tok, nil), 200)

	_ = s.Close()
	for n, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		for _, sec := range f.secrets {
			if what, ok := sec.leaks(line); ok {
				t.Errorf("log line %d carries %s of the %s", n+1, what, sec.label)
			}
		}
		assertNoKeyShapes(t, fmt.Sprintf("log line %d", n+1), line)
	}
	for i, ex := range f.exchanges {
		for _, sec := range f.secrets {
			if sec.issuedBy == i {
				continue
			}
			if what, ok := sec.leaks(exchangeText(ex.r)); ok {
				t.Errorf("the response to %q (%d) carries %s of the %s", ex.label, ex.r.status, what, sec.label)
			}
		}
	}
}

// leaks reports whether text holds secret, or any secretWindow-long piece of it, and which;
// the description names an offset, never the characters.
func leaks(text, secret string) (string, bool) {
	if strings.Contains(text, secret) {
		return "the whole value", true
	}
	for i := 0; i+secretWindow <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+secretWindow]) {
			return fmt.Sprintf("the %d characters at offset %d", secretWindow, i), true
		}
	}
	return "", false
}

// assertNoKeyShapes fails if text holds anything shaped like a token or like key material
// (the pepper, a hash, a token's body), whether or not the test knows its value: the local
// pepper is generated inside the stack and never handed to a test.
func assertNoKeyShapes(t *testing.T, where, text string) {
	t.Helper()
	if tokenLike.MatchString(text) {
		t.Errorf("%s carries something shaped like a token", where)
	}
	for _, run := range longBase62.FindAllString(text, -1) {
		t.Errorf("%s carries a %d-character base62 run starting %q, shaped like key material", where, len(run), run[:4])
	}
}

// tokenHashes reads the stored hashes of every token from the table: the lookup keys of the
// credentials and the hash kept on each token's metadata.
func tokenHashes(t *testing.T, s *local.Stack) []string {
	t.Helper()
	seen := map[string]bool{}
	var hashes []string
	add := func(h string) {
		if h != "" && !seen[h] {
			seen[h] = true
			hashes = append(hashes, h)
		}
	}
	p := dynamodb.NewScanPaginator(s.DB, &dynamodb.ScanInput{TableName: aws.String(s.Table)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range out.Items {
			if pk, ok := item["pk"].(*types.AttributeValueMemberS); ok {
				if h, ok := strings.CutPrefix(pk.Value, "TOKENHASH#"); ok {
					add(h)
				}
			}
			if h, ok := item["hash"].(*types.AttributeValueMemberS); ok {
				add(h.Value)
			}
		}
	}
	if len(hashes) == 0 {
		t.Fatal("the table holds no token hash: the scan sees nothing to check the logs against")
	}
	return hashes
}

// waitLastUsed waits until the account's last use reaches the listing through the stream.
func waitLastUsed(t *testing.T, s *local.Stack, admin, saID string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, a := range listAll(t, s, testOrg, admin) {
			if a["id"] == saID && a["lastUsedAt"] != nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("lastUsedAt did not appear within 5 s of use")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
