package apigw_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/opentrace/service-accounts/pkg/apigw"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/testworld"
	"github.com/opentrace/service-accounts/pkg/token"
)

const org = "org_acme"

var (
	admin       = sa.Principal{Type: sa.PrincipalUser, OrgID: org, Subject: "user_admin", Role: sa.RoleAdmin}
	member      = sa.Principal{Type: sa.PrincipalUser, OrgID: org, Subject: "user_member", Role: sa.RoleMember}
	otherAdmin  = sa.Principal{Type: sa.PrincipalUser, OrgID: "org_other", Subject: "user_x", Role: sa.RoleAdmin}
	tokenCaller = sa.Principal{Type: sa.PrincipalServiceAccount, OrgID: org, Subject: "sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W",
		ServiceAccountID: "sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W", ServiceAccountName: "ci", TokenID: "tok_01JD5Z4A1B2C3D4E5F6G7H8J9K"}
)

type fixture struct {
	w     *testworld.World
	ctx   context.Context
	ids   map[string]string // placeholders in path parameters: {sa}, {tok}, {otherSA}, ...
	token string            // a live token of {sa}
}

// newFixture builds the functions as template.yaml wires them, with at most 2 active tokens
// per account, and creates an account {sa} with a live token {tok} and a revoked one
// {revoked}, a full account {full}, and an account of another org {otherSA} with a token
// {otherTok}.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{w: testworld.New(t, map[string]string{"MaxActiveTokens": "2"}), ctx: context.Background(), ids: map[string]string{}}
	svc := f.w.App(t).Service
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	acct, _, err := svc.Create(f.ctx, org, "user_admin", sa.CreateInput{Name: "claude-code"})
	must(err)
	tok, secret, err := svc.GenerateToken(f.ctx, org, acct.ID, "user_admin", sa.GenerateInput{})
	must(err)
	revoked, _, err := svc.GenerateToken(f.ctx, org, acct.ID, "user_admin", sa.GenerateInput{})
	must(err)
	must(svc.RevokeToken(f.ctx, org, acct.ID, revoked.ID, "user_admin"))
	full, _, err := svc.Create(f.ctx, org, "user_admin", sa.CreateInput{Name: "github-actions-prod"})
	must(err)
	for range 2 {
		_, _, err = svc.GenerateToken(f.ctx, org, full.ID, "user_admin", sa.GenerateInput{})
		must(err)
	}
	other, _, err := svc.Create(f.ctx, "org_other", "user_x", sa.CreateInput{Name: "claude-code-dev-team"})
	must(err)
	otherTok, _, err := svc.GenerateToken(f.ctx, "org_other", other.ID, "user_x", sa.GenerateInput{})
	must(err)
	maps.Copy(f.ids, map[string]string{
		"{sa}": acct.ID, "{tok}": tok.ID, "{revoked}": revoked.ID, "{full}": full.ID,
		"{otherSA}": other.ID, "{otherTok}": otherTok.ID,
		"{unknownSA}": "sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "{unknownTok}": "tok_01JAAAAAAAAAAAAAAAAAAAAAAA",
	})
	f.token = secret
	return f
}

// loadEvent reads an events/ fixture: the same files `sam local invoke` uses.
func loadEvent(t *testing.T, name string) events.APIGatewayProxyRequest {
	t.Helper()
	return testkit.LoadEvent(t, filepath.Join("..", "..", "events", name+".json"))
}

// handler is the function that serves an events/ fixture's route, as the template routes it.
func (f *fixture) handler(event string) apigw.Handler {
	id := map[string]string{"create": "CreateFunction", "generate": "GenerateFunction", "revoke": "RevokeFunction", "delete": "DeleteFunction"}[event]
	if id == "" {
		id = "ListFunction"
	}
	return f.w.Function(id).(apigw.Handler)
}

// snapshot is the whole table, to prove a refused request wrote nothing.
func (f *fixture) snapshot(t *testing.T) []map[string]any {
	t.Helper()
	out, err := f.w.DB.Scan(f.ctx, &dynamodb.ScanInput{TableName: aws.String(f.w.Table)})
	if err != nil {
		t.Fatal(err)
	}
	var items []map[string]any
	for _, it := range out.Items {
		m := map[string]any{}
		for k, v := range it {
			m[k] = v
		}
		items = append(items, m)
	}
	return items
}

type request struct {
	event  string
	caller *sa.Principal
	path   map[string]string
	body   *string
	base64 bool
	query  map[string]string
}

func (f *fixture) call(t *testing.T, r request) (events.APIGatewayProxyResponse, map[string]any) {
	t.Helper()
	ev := loadEvent(t, r.event)
	c := admin
	if r.caller != nil {
		c = *r.caller
	}
	ev.RequestContext.Authorizer = apigw.AuthorizerContext(c)
	for k, v := range r.path {
		ev.PathParameters[k] = v
	}
	for k, v := range ev.PathParameters {
		if id, ok := f.ids[v]; ok {
			ev.PathParameters[k] = id
		}
	}
	if r.body != nil {
		ev.Body = *r.body
	}
	if r.base64 {
		ev.Body = base64.StdEncoding.EncodeToString([]byte(ev.Body))
		ev.IsBase64Encoded = true
	}
	if r.query != nil {
		ev.QueryStringParameters = r.query
	}
	resp, err := f.handler(r.event)(f.ctx, ev)
	if err != nil {
		t.Fatalf("handler returned an error instead of a response: %v", err)
	}
	var body map[string]any
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
			t.Fatalf("body is not a JSON object: %q", resp.Body)
		}
	}
	return resp, body
}

func str(s string) *string { return &s }

// TestRoutes covers every route and every outcome of the contract table.
func TestRoutes(t *testing.T) {
	long := strings.Repeat("n", 65)
	for _, tc := range []struct {
		name    string
		req     request
		status  int
		problem string // the error code in the problem type, for errors
		field   string // the invalid field, for 400s
		check   func(t *testing.T, f *fixture, body map[string]any)
	}{
		// POST /orgs/{orgId}/service-accounts
		{name: "Create201", req: request{event: "create"}, status: 201, check: func(t *testing.T, f *fixture, b map[string]any) {
			wantKeys(t, b, "id", "name", "description", "createdAt", "createdBy", "activeTokens", "lastUsedAt", "warnings")
			if b["name"] != "claude-code-dev-team" || b["createdBy"] != "user_admin" || b["activeTokens"] != 0.0 || b["lastUsedAt"] != nil {
				t.Fatalf("account = %v", b)
			}
			if ws := b["warnings"].([]any); len(ws) != 0 {
				t.Fatalf("warnings = %v", ws)
			}
		}},
		{name: "Create201WithWarning", req: request{event: "create", body: str(`{"name":"john-token"}`)}, status: 201, check: func(t *testing.T, f *fixture, b map[string]any) {
			ws := b["warnings"].([]any)
			if len(ws) != 1 || ws[0].(map[string]any)["code"] != sa.WarnPersonalName {
				t.Fatalf("warnings = %v", ws)
			}
		}},
		{name: "Create201Base64Body", req: request{event: "create", body: str(`{"name":"ci-pipeline"}`), base64: true}, status: 201},
		{name: "Create409NameTakenIgnoringCase", req: request{event: "create", body: str(`{"name":"Claude-Code"}`)}, status: 409, problem: sa.ECONFLICT},
		{name: "Create400MalformedJSON", req: request{event: "create", body: str(`{"name":`)}, status: 400, problem: sa.EINVALID, field: "body"},
		{name: "Create400NotAnObject", req: request{event: "create", body: str(`["x"]`)}, status: 400, problem: sa.EINVALID, field: "body"},
		{name: "Create400Null", req: request{event: "create", body: str(`null`)}, status: 400, problem: sa.EINVALID, field: "body"},
		{name: "Create400TrailingData", req: request{event: "create", body: str(`{"name":"a"}{"name":"b"}`)}, status: 400, problem: sa.EINVALID, field: "body"},
		{name: "Create400Oversized", req: request{event: "create", body: str(`{"name":"x","description":"` + strings.Repeat("d", apigw.MaxBodyBytes) + `"}`)}, status: 400, problem: sa.EINVALID, field: "body"},
		{name: "Create400UnknownField", req: request{event: "create", body: str(`{"name":"x","admin":true}`)}, status: 400, problem: sa.EINVALID, field: "admin"},
		{name: "Create400WrongType", req: request{event: "create", body: str(`{"name":42}`)}, status: 400, problem: sa.EINVALID, field: "name"},
		{name: "Create400NameMissing", req: request{event: "create", body: str(`{}`)}, status: 400, problem: sa.EINVALID, field: "name"},
		{name: "Create400NameTooLong", req: request{event: "create", body: str(`{"name":"` + long + `"}`)}, status: 400, problem: sa.EINVALID, field: "name"},
		{name: "Create400NameControlChar", req: request{event: "create", body: str(`{"name":"a\u0007b"}`)}, status: 400, problem: sa.EINVALID, field: "name"},
		{name: "Create400NotJSON", req: request{event: "create", body: str(`name=x`)}, status: 400, problem: sa.EINVALID, field: "body"},
		{name: "Create403Member", req: request{event: "create", caller: &member}, status: 403, problem: sa.EFORBIDDEN},
		{name: "Create403OtherOrg", req: request{event: "create", caller: &otherAdmin}, status: 403, problem: sa.EFORBIDDEN},
		{name: "Create403ServiceAccountToken", req: request{event: "create", caller: &tokenCaller}, status: 403, problem: sa.EFORBIDDEN},

		// GET /orgs/{orgId}/service-accounts
		{name: "List200", req: request{event: "list"}, status: 200, check: func(t *testing.T, f *fixture, b map[string]any) {
			wantKeys(t, b, "items", "nextCursor")
			items := b["items"].([]any)
			if len(items) != 2 || b["nextCursor"] != nil {
				t.Fatalf("list = %v", b)
			}
			first := items[0].(map[string]any)
			wantKeys(t, first, "id", "name", "description", "createdAt", "createdBy", "activeTokens", "lastUsedAt")
			if first["id"] != f.ids["{sa}"] || first["activeTokens"] != 1.0 {
				t.Fatalf("first = %v", first)
			}
		}},
		{name: "List200Member", req: request{event: "list", caller: &member}, status: 200},
		{name: "List200Paged", req: request{event: "list", query: map[string]string{"limit": "1"}}, status: 200, check: func(t *testing.T, f *fixture, b map[string]any) {
			if len(b["items"].([]any)) != 1 || b["nextCursor"] == nil {
				t.Fatalf("page = %v", b)
			}
		}},
		{name: "List400LimitZero", req: request{event: "list", query: map[string]string{"limit": "0"}}, status: 400, problem: sa.EINVALID, field: "limit"},
		{name: "List400LimitTooLarge", req: request{event: "list", query: map[string]string{"limit": "101"}}, status: 400, problem: sa.EINVALID, field: "limit"},
		{name: "List400LimitNotANumber", req: request{event: "list", query: map[string]string{"limit": "ten"}}, status: 400, problem: sa.EINVALID, field: "limit"},
		{name: "List400Cursor", req: request{event: "list", query: map[string]string{"cursor": "c1.AAAA.BBBB"}}, status: 400, problem: sa.EINVALID, field: "cursor"},
		{name: "List403OtherOrg", req: request{event: "list", caller: &otherAdmin}, status: 403, problem: sa.EFORBIDDEN},
		{name: "List403ServiceAccountToken", req: request{event: "list", caller: &tokenCaller}, status: 403, problem: sa.EFORBIDDEN},

		// GET /orgs/{orgId}/service-accounts/{saId}
		{name: "Get200", req: request{event: "get", path: map[string]string{"saId": "{sa}"}}, status: 200, check: func(t *testing.T, f *fixture, b map[string]any) {
			wantKeys(t, b, "id", "name", "description", "createdAt", "createdBy", "activeTokens", "lastUsedAt", "tokens")
			tokens := b["tokens"].([]any)
			if len(tokens) != 2 || b["activeTokens"] != 1.0 {
				t.Fatalf("get = %v", b)
			}
			for _, tk := range tokens {
				assertTokenJSON(t, f, tk.(map[string]any))
			}
		}},
		{name: "Get404Unknown", req: request{event: "get", path: map[string]string{"saId": "{unknownSA}"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Get404Malformed", req: request{event: "get", path: map[string]string{"saId": "SA#x"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Get404OtherOrgsID", req: request{event: "get", path: map[string]string{"saId": "{otherSA}"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Get403OtherOrg", req: request{event: "get", caller: &otherAdmin, path: map[string]string{"saId": "{sa}"}}, status: 403, problem: sa.EFORBIDDEN},

		// GET /orgs/{orgId}/service-accounts/{saId}/tokens
		{name: "ListTokens200", req: request{event: "list-tokens", path: map[string]string{"saId": "{sa}"}}, status: 200, check: func(t *testing.T, f *fixture, b map[string]any) {
			items := b["items"].([]any)
			if len(items) != 2 {
				t.Fatalf("tokens = %v", b)
			}
			statuses := []any{items[0].(map[string]any)["status"], items[1].(map[string]any)["status"]}
			if !reflect.DeepEqual(statuses, []any{"active", "revoked"}) {
				t.Fatalf("statuses = %v", statuses)
			}
		}},
		{name: "ListTokens200Member", req: request{event: "list-tokens", caller: &member, path: map[string]string{"saId": "{sa}"}}, status: 200},
		{name: "ListTokens404", req: request{event: "list-tokens", path: map[string]string{"saId": "{otherSA}"}}, status: 404, problem: sa.ENOTFOUND},

		// POST /orgs/{orgId}/service-accounts/{saId}/tokens
		{name: "Generate201", req: request{event: "generate", path: map[string]string{"saId": "{sa}"}}, status: 201, check: func(t *testing.T, f *fixture, b map[string]any) {
			assertTokenJSON(t, f, b, "token")
			secret, _ := b["token"].(string)
			if token.Parse(secret) != nil || b["hint"] != token.Hint(secret) || b["status"] != "active" || b["name"] != "laptop" {
				t.Fatalf("issued token = %v", b)
			}
			exp, _ := time.Parse(time.RFC3339, b["expiresAt"].(string))
			created, _ := time.Parse(time.RFC3339, b["createdAt"].(string))
			if exp.Sub(created) != 90*24*time.Hour {
				t.Fatalf("expiresAt - createdAt = %v", exp.Sub(created))
			}
		}},
		{name: "Generate201EmptyBody", req: request{event: "generate", path: map[string]string{"saId": "{sa}"}, body: str("")}, status: 201},
		{name: "Generate409Cap", req: request{event: "generate", path: map[string]string{"saId": "{full}"}}, status: 409, problem: sa.ECONFLICT},
		{name: "Generate404", req: request{event: "generate", path: map[string]string{"saId": "{unknownSA}"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Generate404OtherOrgsID", req: request{event: "generate", path: map[string]string{"saId": "{otherSA}"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Generate400ExpiryZero", req: request{event: "generate", path: map[string]string{"saId": "{sa}"}, body: str(`{"expiresInDays":0}`)}, status: 400, problem: sa.EINVALID, field: "expiresInDays"},
		{name: "Generate400ExpiryTooLong", req: request{event: "generate", path: map[string]string{"saId": "{sa}"}, body: str(`{"expiresInDays":366}`)}, status: 400, problem: sa.EINVALID, field: "expiresInDays"},
		{name: "Generate400ExpiryFraction", req: request{event: "generate", path: map[string]string{"saId": "{sa}"}, body: str(`{"expiresInDays":1.5}`)}, status: 400, problem: sa.EINVALID, field: "expiresInDays"},
		{name: "Generate400ExpiryString", req: request{event: "generate", path: map[string]string{"saId": "{sa}"}, body: str(`{"expiresInDays":"30"}`)}, status: 400, problem: sa.EINVALID, field: "expiresInDays"},
		{name: "Generate400UnknownField", req: request{event: "generate", path: map[string]string{"saId": "{sa}"}, body: str(`{"scope":"all"}`)}, status: 400, problem: sa.EINVALID, field: "scope"},
		{name: "Generate403Member", req: request{event: "generate", caller: &member, path: map[string]string{"saId": "{sa}"}}, status: 403, problem: sa.EFORBIDDEN},
		{name: "Generate403ServiceAccountToken", req: request{event: "generate", caller: &tokenCaller, path: map[string]string{"saId": "{sa}"}}, status: 403, problem: sa.EFORBIDDEN},

		// DELETE /orgs/{orgId}/service-accounts/{saId}/tokens/{tokenId}
		{name: "Revoke204", req: request{event: "revoke", path: map[string]string{"saId": "{sa}", "tokenId": "{tok}"}}, status: 204},
		{name: "Revoke204Again", req: request{event: "revoke", path: map[string]string{"saId": "{sa}", "tokenId": "{revoked}"}}, status: 204},
		{name: "Revoke404Unknown", req: request{event: "revoke", path: map[string]string{"saId": "{sa}", "tokenId": "{unknownTok}"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Revoke404OtherOrgsToken", req: request{event: "revoke", path: map[string]string{"saId": "{otherSA}", "tokenId": "{otherTok}"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Revoke404TokenOfAnotherAccount", req: request{event: "revoke", path: map[string]string{"saId": "{full}", "tokenId": "{tok}"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Revoke403Member", req: request{event: "revoke", caller: &member, path: map[string]string{"saId": "{sa}", "tokenId": "{tok}"}}, status: 403, problem: sa.EFORBIDDEN},

		// DELETE /orgs/{orgId}/service-accounts/{saId}
		{name: "Delete204", req: request{event: "delete", path: map[string]string{"saId": "{sa}"}}, status: 204},
		{name: "Delete404", req: request{event: "delete", path: map[string]string{"saId": "{unknownSA}"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Delete404OtherOrgsID", req: request{event: "delete", path: map[string]string{"saId": "{otherSA}"}}, status: 404, problem: sa.ENOTFOUND},
		{name: "Delete403Member", req: request{event: "delete", caller: &member, path: map[string]string{"saId": "{sa}"}}, status: 403, problem: sa.EFORBIDDEN},
		{name: "Delete403OtherOrg", req: request{event: "delete", caller: &otherAdmin, path: map[string]string{"saId": "{sa}"}}, status: 403, problem: sa.EFORBIDDEN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			before := f.snapshot(t)
			resp, body := f.call(t, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.status, resp.Body)
			}
			if resp.Headers["Cache-Control"] != "no-store" {
				t.Errorf("Cache-Control = %q", resp.Headers["Cache-Control"])
			}
			if tc.status == 204 && resp.Body != "" {
				t.Errorf("204 with a body: %q", resp.Body)
			}
			if tc.problem != "" {
				assertProblem(t, resp, body, tc.status, tc.problem, tc.field)
				if after := f.snapshot(t); !reflect.DeepEqual(before, after) {
					t.Fatalf("a refused request changed the table")
				}
			} else if ct, want := resp.Headers["Content-Type"], map[bool]string{true: "", false: "application/json"}[tc.status == 204]; ct != want {
				t.Errorf("Content-Type = %q, want %q", ct, want)
			}
			if tc.check != nil {
				tc.check(t, f, body)
			}
		})
	}
}

func wantKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	got := map[string]bool{}
	for k := range m {
		got[k] = true
	}
	for _, k := range keys {
		if !got[k] {
			t.Errorf("missing %q in %v", k, m)
		}
		delete(got, k)
	}
	for k := range got {
		t.Errorf("unexpected field %q", k)
	}
}

func assertTokenJSON(t *testing.T, f *fixture, tk map[string]any, extra ...string) {
	t.Helper()
	wantKeys(t, tk, append([]string{"id", "name", "hint", "status", "createdAt", "createdBy", "expiresAt", "lastUsedAt", "revokedAt"}, extra...)...)
	raw, _ := json.Marshal(tk)
	if len(extra) == 0 && strings.Contains(string(raw), "otsa_") && !strings.Contains(string(raw), "otsa_…") {
		t.Fatalf("a token listing carries a secret: %s", raw)
	}
	if strings.Contains(string(raw), f.token) {
		t.Fatalf("a response carries an existing token: %s", raw)
	}
}

func assertProblem(t *testing.T, resp events.APIGatewayProxyResponse, body map[string]any, status int, code, field string) {
	t.Helper()
	if ct := resp.Headers["Content-Type"]; ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if body["type"] != apigw.ProblemTypeBase+code || body["status"] != float64(status) || body["title"] == "" || body["detail"] == "" {
		t.Fatalf("problem = %v", body)
	}
	if field == "" {
		return
	}
	errs, _ := body["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["field"] != field {
		t.Fatalf("errors = %v, want one naming %q", body["errors"], field)
	}
}
