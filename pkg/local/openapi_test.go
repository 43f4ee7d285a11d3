package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/local"
	"github.com/opentrace/service-accounts/pkg/localidp"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// oaSpecPath is the published contract; these tests hold the local stack to it and it to
// the local stack.
const oaSpecPath = "../../openapi.yaml"

// oaContract is openapi.yaml loaded for validation, and the outcomes observed so far.
type oaContract struct {
	doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[oaOutcome]bool
}

// oaOutcome is one documented answer of one operation: "POST /mcp/v1" 400 "text/plain". media
// is "" for a response without a body.
type oaOutcome struct {
	op     string
	status int
	media  string
}

func oaLoadContract(t *testing.T) *oaContract {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(oaSpecPath)
	if err != nil {
		t.Fatalf("load %s: %v", oaSpecPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", oaSpecPath, err)
	}
	// The servers name AWS and port 3000; the stacks under test listen on random ports, and
	// the routes are the same under any server, so route on paths alone.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &oaContract{doc: doc, router: router, seen: map[oaOutcome]bool{}}
}

// operations returns every documented operation as "METHOD /template".
func (c *oaContract) operations() []string {
	var ops []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	slices.Sort(ops)
	return ops
}

// documented returns every (operation, status, media type) the contract promises.
func (c *oaContract) documented() []oaOutcome {
	var out []oaOutcome
	for _, op := range c.operations() {
		method, path, _ := strings.Cut(op, " ")
		for code, ref := range c.doc.Paths.Value(path).GetOperation(method).Responses.Map() {
			var status int
			if _, err := fmt.Sscan(code, &status); err != nil {
				continue // "default" or a range: not used by this contract
			}
			if len(ref.Value.Content) == 0 {
				out = append(out, oaOutcome{op, status, ""})
			}
			for media := range ref.Value.Content {
				out = append(out, oaOutcome{op, status, media})
			}
		}
	}
	return out
}

// oaExchange is one request to a stack and what the contract says of it and its answer.
type oaExchange struct {
	name   string
	op     string // the documented operation it exercises: "METHOD /template"
	path   string // as sent, escaped
	bearer string // Authorization: Bearer <bearer>; "" for none (see header)
	header map[string]string
	body   any // nil, a string sent as is, or a value sent as JSON

	status int
	media  string // the response's media type; "" for no body
	// valid says whether the request conforms to the contract: a request the contract
	// forbids must be one the API refuses, and the contract must not forbid what it serves.
	valid bool
	// unroutable marks a path API Gateway routes nowhere (a path parameter holding an encoded
	// '/'), which the contract answers as a 404 of op.
	unroutable bool
}

// do sends ex to the stack at base and checks the request and the response against the
// contract: the route is documented, the request is valid exactly when ex says so, and the
// status, media type, headers and body are the ones documented.
func (c *oaContract) do(t *testing.T, base string, ex oaExchange) response {
	t.Helper()
	method, _, _ := strings.Cut(ex.op, " ")
	var raw []byte
	switch b := ex.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	newRequest := func() *http.Request {
		var body io.Reader = http.NoBody
		if ex.body != nil {
			body = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(method, base+ex.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if ex.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if ex.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+ex.bearer)
		}
		for k, v := range ex.header {
			req.Header.Set(k, v)
		}
		return req
	}

	resp, err := http.DefaultClient.Do(newRequest())
	if err != nil {
		t.Fatalf("%s: %v", ex.name, err)
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(respBody)}
	_ = json.Unmarshal(respBody, &r.body)

	// The request, as the contract sees it.
	vreq := newRequest()
	route, params := c.route(t, vreq, ex)
	in := &openapi3filter.RequestValidationInput{
		Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: oaBearerScheme, MultiError: true},
	}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case ex.valid && reqErr != nil:
		t.Errorf("%s: the contract rejects a request the test means as valid: %v", ex.name, reqErr)
	case !ex.valid && reqErr == nil:
		t.Errorf("%s: the contract accepts a request the API refuses with %d", ex.name, r.status)
	}

	// The response, as the contract documents it.
	if r.status != ex.status {
		t.Errorf("%s: status %d, want %d: %.300s", ex.name, r.status, ex.status, r.raw)
	}
	media := ""
	if len(respBody) > 0 {
		media, _, err = mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil {
			t.Errorf("%s: Content-Type %q: %v", ex.name, resp.Header.Get("Content-Type"), err)
		}
	}
	if media != ex.media {
		t.Errorf("%s: media type %q, want %q: %.300s", ex.name, media, ex.media, r.raw)
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(respBody)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Errorf("%s: the response does not match the contract: %v", ex.name, err)
	}
	// kin-openapi does not check that a response documented without content has none.
	if doc := route.Operation.Responses.Status(r.status); doc != nil && len(doc.Value.Content) == 0 && len(respBody) > 0 {
		t.Errorf("%s: %d is documented without a body, got %q", ex.name, r.status, r.raw)
	}

	c.mu.Lock()
	c.seen[oaOutcome{ex.op, r.status, media}] = true
	c.mu.Unlock()
	return r
}

// route finds the documented operation of a request, which must be ex.op. An unroutable
// path is matched to ex.op by hand: the router, like the local stack, decodes an encoded '/'
// before matching, so it would find a different operation or none.
func (c *oaContract) route(t *testing.T, req *http.Request, ex oaExchange) (*routers.Route, map[string]string) {
	t.Helper()
	method, template, _ := strings.Cut(ex.op, " ")
	if !ex.unroutable {
		route, params, err := c.router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s: %s %s is not a documented route: %v", ex.name, req.Method, req.URL.Path, err)
		}
		if got := route.Method + " " + route.Path; got != ex.op {
			t.Fatalf("%s: the request reaches %s in the contract, want %s", ex.name, got, ex.op)
		}
		return route, params
	}
	item := c.doc.Paths.Value(template)
	if item == nil || item.GetOperation(method) == nil {
		t.Fatalf("%s: %s is not documented", ex.name, ex.op)
	}
	want := strings.Split(strings.Trim(template, "/"), "/")
	got := strings.Split(strings.Trim(req.URL.EscapedPath(), "/"), "/")
	if len(got) != len(want) {
		t.Fatalf("%s: %s does not have the segments of %s", ex.name, req.URL.EscapedPath(), template)
	}
	params := map[string]string{}
	for i, seg := range want {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			v, err := url.PathUnescape(got[i])
			if err != nil {
				t.Fatal(err)
			}
			params[strings.TrimSuffix(name, "}")] = v
		}
	}
	return &routers.Route{Spec: c.doc, Path: template, PathItem: item, Method: method, Operation: item.GetOperation(method)}, params
}

// oaBearerScheme checks the contract's one security scheme, http bearer: the credential
// itself is the authorizer's business, its presence and scheme are the contract's.
func oaBearerScheme(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := strings.TrimSpace(in.RequestValidationInput.Request.Header.Get("Authorization"))
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(cred) == "" {
		return errors.New("no bearer credential")
	}
	return nil
}

// requireEveryOutcome fails for each documented outcome no exchange produced, and for each
// produced outcome the contract does not document: a documented answer nothing can produce
// is as wrong as an undocumented one.
func (c *oaContract) requireEveryOutcome(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	documented := c.documented()
	for _, o := range documented {
		if !c.seen[o] {
			t.Errorf("documented but never produced: %s → %d %q", o.op, o.status, o.media)
		}
	}
	for o := range c.seen {
		if !slices.Contains(documented, o) {
			t.Errorf("produced but not documented: %s → %d %q", o.op, o.status, o.media)
		}
	}
}

// TestOpenAPIRoutesMatchTemplate: openapi.yaml documents exactly the routes template.yaml
// gives API Gateway, which are the routes the local stack serves.
func TestOpenAPIRoutesMatchTemplate(t *testing.T) {
	c := oaLoadContract(t)
	served := apiRoutes(t)
	documented := c.operations()
	for _, op := range documented {
		if !slices.Contains(served, op) {
			t.Errorf("openapi.yaml documents %s, which template.yaml does not route", op)
		}
	}
	for _, op := range served {
		if !slices.Contains(documented, op) {
			t.Errorf("template.yaml routes %s, which openapi.yaml does not document", op)
		}
	}
}

// Operations of the contract, as exchanges name them.
const (
	oaOpCreate    = "POST /orgs/{orgId}/service-accounts"
	oaOpList      = "GET /orgs/{orgId}/service-accounts"
	oaOpGet       = "GET /orgs/{orgId}/service-accounts/{saId}"
	oaOpDelete    = "DELETE /orgs/{orgId}/service-accounts/{saId}"
	oaOpGenerate  = "POST /orgs/{orgId}/service-accounts/{saId}/tokens"
	oaOpTokens    = "GET /orgs/{orgId}/service-accounts/{saId}/tokens"
	oaOpRevoke    = "DELETE /orgs/{orgId}/service-accounts/{saId}/tokens/{tokenId}"
	oaOpAudit     = "GET /orgs/{orgId}/audit"
	oaOpWhoami    = "GET /v1/whoami"
	oaOpMCP       = "POST /mcp/v1"
	oaOpMCPGet    = "GET /mcp/v1"
	oaOpMCPDelete = "DELETE /mcp/v1"
	oaOpWebhook   = "POST /v1/identity/webhooks"
)

const (
	oaJSON    = "application/json"
	oaProblem = "application/problem+json"
	oaText    = "text/plain"
)

// oaMCPAccept is the Accept header streamable HTTP requires of MCP clients.
var oaMCPAccept = map[string]string{"Accept": "application/json, text/event-stream"}

// oaMCPCall is a JSON-RPC call of the whoami tool, as an MCP client makes it.
var oaMCPCall = map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
	"params": map[string]any{"name": "whoami", "arguments": map[string]any{}}}

// oaTarget is one operation with a concrete path and an acceptable body, to drive the same
// outcome (a refusal, a failure) through every operation.
type oaTarget struct {
	op, path string
	body     any
	header   map[string]string
}

func oaTargets(saID, tokenID string) []oaTarget {
	a := "/orgs/org_acme/service-accounts"
	return []oaTarget{
		{op: oaOpCreate, path: a, body: map[string]string{"name": "ci-pipeline"}},
		{op: oaOpList, path: a},
		{op: oaOpGet, path: a + "/" + saID},
		{op: oaOpDelete, path: a + "/" + saID},
		{op: oaOpGenerate, path: a + "/" + saID + "/tokens", body: map[string]any{}},
		{op: oaOpTokens, path: a + "/" + saID + "/tokens"},
		{op: oaOpRevoke, path: a + "/" + saID + "/tokens/" + tokenID},
		{op: oaOpAudit, path: "/orgs/org_acme/audit"},
		{op: oaOpWhoami, path: "/v1/whoami"},
		{op: oaOpMCP, path: "/mcp/v1", body: oaMCPCall, header: oaMCPAccept},
		{op: oaOpMCPGet, path: "/mcp/v1"},
		{op: oaOpMCPDelete, path: "/mcp/v1"},
	}
}

func oaIsManagement(op string) bool { return strings.Contains(op, " /orgs/") }

// oaOversized is a body API Gateway refuses before anything runs: over 10 MiB.
func oaOversized() map[string]string {
	return map[string]string{"name": "x", "description": strings.Repeat("a", 10<<20)}
}

// TestOpenAPIContract drives every route and every documented outcome through the local
// stack — as admins, members, another org's admin, service-account tokens, with no header,
// revoked and deleted tokens, malformed input and unknown ids — through a second stack whose
// DynamoDB fails on demand and whose authorizer allows everything, to reach the functions'
// own refusals and failures, and through a third whose stage throttles. Every request and response is validated against
// openapi.yaml, and every outcome it documents must have been produced.
func TestOpenAPIContract(t *testing.T) {
	c := oaLoadContract(t)
	stack := t.Run("Stack", func(t *testing.T) { oaDriveStack(t, c) })
	faults := t.Run("Faults", func(t *testing.T) { oaDriveFaults(t, c) })
	throttled := t.Run("Throttled", func(t *testing.T) { oaDriveThrottled(t, c) })
	if stack && faults && throttled { // after a failure, outcomes not reached would only repeat it
		c.requireEveryOutcome(t)
	}
}

// oaDriveThrottled drives a stack whose stage accepts one request a second, the least its
// parameters allow: right after a request that takes the second's token, API Gateway's
// throttling answers every route before the authorizer runs.
func oaDriveThrottled(t *testing.T, c *oaContract) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := local.Start(context.Background(), ln, local.Options{
		Template: "../../template.yaml", Logs: io.Discard,
		Params: map[string]string{"ApiThrottlingRateLimit": "1", "ApiThrottlingBurstLimit": "1"},
	})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	admin := devToken(t, s, "org_acme", "admin", "user_alice") // the local endpoints are not the API's
	c.do(t, s.URL, oaExchange{name: "the burst of one", op: oaOpWhoami, path: "/v1/whoami", bearer: admin,
		status: 200, media: oaJSON, valid: true})
	webhook := oaTarget{op: oaOpWebhook, path: "/v1/identity/webhooks", body: `{"type":"user.created"}`,
		header: map[string]string{"svix-id": "msg_1", "svix-timestamp": "1", "svix-signature": "v1,x"}}
	for _, tg := range append(oaTargets("sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "tok_01JAAAAAAAAAAAAAAAAAAAAAAA"), webhook) {
		t.Run(tg.op, func(t *testing.T) {
			call(t, "GET", s.URL+"/v1/whoami", admin, nil) // takes any token refilled since
			c.do(t, s.URL, oaExchange{name: tg.op + ": throttled", op: tg.op, path: tg.path, bearer: admin,
				header: tg.header, body: tg.body, status: 429, media: oaJSON, valid: true})
		})
	}
}

// oaDriveStack drives the local stack as template.yaml configures it.
func oaDriveStack(t *testing.T, c *oaContract) {
	s, _ := startStack(t)
	admin := devToken(t, s, "org_acme", "admin", "user_alice")
	member := devToken(t, s, "org_acme", "member", "user_bob")
	other := devToken(t, s, "org_beta", "admin", "user_carol")
	const a = "/orgs/org_acme/service-accounts"
	do := func(ex oaExchange) response { t.Helper(); return c.do(t, s.URL, ex) }

	// State for the cases below, itself created through the contract: an account with an
	// active token, a revoked token, and the token of a deleted account.
	acct := do(oaExchange{name: "setup: create", op: oaOpCreate, path: a, bearer: admin,
		body:   map[string]string{"name": "claude-code-dev-team", "description": "Claude Code for the dev team"},
		status: 201, media: oaJSON, valid: true}).body
	saID := acct["id"].(string)
	issued := do(oaExchange{name: "setup: generate", op: oaOpGenerate, path: a + "/" + saID + "/tokens", bearer: admin,
		body: map[string]any{"name": "laptop", "expiresInDays": 90}, status: 201, media: oaJSON, valid: true})
	if issued.header.Get("Cache-Control") != "no-store" {
		t.Errorf("the issued token's response is cacheable: Cache-Control %q", issued.header.Get("Cache-Control"))
	}
	secret, tokenID := issued.body["token"].(string), issued.body["id"].(string)
	revoked := do(oaExchange{name: "setup: generate to revoke", op: oaOpGenerate, path: a + "/" + saID + "/tokens", bearer: admin,
		status: 201, media: oaJSON, valid: true}).body
	do(oaExchange{name: "setup: revoke", op: oaOpRevoke, path: a + "/" + saID + "/tokens/" + revoked["id"].(string), bearer: admin,
		status: 204, valid: true})
	gone := do(oaExchange{name: "setup: account to delete", op: oaOpCreate, path: a, bearer: admin,
		body: map[string]string{"name": "jenkins-legacy"}, status: 201, media: oaJSON, valid: true}).body["id"].(string)
	goneSecret := do(oaExchange{name: "setup: its token", op: oaOpGenerate, path: a + "/" + gone + "/tokens", bearer: admin,
		body: map[string]any{}, status: 201, media: oaJSON, valid: true}).body["token"].(string)
	do(oaExchange{name: "setup: delete it", op: oaOpDelete, path: a + "/" + gone, bearer: admin, status: 204, valid: true})
	oaDriveWebhook(t, c, s)
	capped := do(oaExchange{name: "setup: account at the token cap", op: oaOpCreate, path: a, bearer: admin,
		body: map[string]string{"name": "github-actions-prod"}, status: 201, media: oaJSON, valid: true}).body["id"].(string)
	for i := range 10 {
		do(oaExchange{name: fmt.Sprintf("setup: token %d of 10", i+1), op: oaOpGenerate, path: a + "/" + capped + "/tokens",
			bearer: admin, status: 201, media: oaJSON, valid: true})
	}
	const unknownSA, unknownTok = "sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "tok_01JAAAAAAAAAAAAAAAAAAAAAAA"
	acctPath, tokensPath := a+"/"+saID, a+"/"+saID+"/tokens"

	cases := []oaExchange{
		// Create.
		{name: "create: vague name gets advice", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": "test"}, status: 201, media: oaJSON, valid: true},
		{name: "create: null description", op: oaOpCreate, path: a, bearer: admin, body: map[string]any{"name": "datadog-sync", "description": nil}, status: 201, media: oaJSON, valid: true},
		{name: "create: name taken ignoring case", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": "CLAUDE-CODE-DEV-TEAM"}, status: 409, media: oaProblem, valid: true},
		{name: "create: no name", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{}, status: 400, media: oaProblem},
		{name: "create: empty body", op: oaOpCreate, path: a, bearer: admin, body: "", status: 400, media: oaProblem},
		{name: "create: name padded with white space", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": " \tterraform-cloud\n"}, status: 201, media: oaJSON, valid: true},
		{name: "create: 64 characters padded to 70", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": "   " + strings.Repeat("n", 64) + "   "}, status: 201, media: oaJSON, valid: true},
		{name: "create: control character in name", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": "ci\u0085bot"}, status: 400, media: oaProblem},
		{name: "create: invisible character in name", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": "ci\u200bbot"}, status: 400, media: oaProblem},
		{name: "create: name only white space", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": " \u00a0\t"}, status: 400, media: oaProblem},
		{name: "create: multi-line description", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": "sentry-relay", "description": "Relays errors.\n\tOwned by SRE."}, status: 201, media: oaJSON, valid: true},
		{name: "create: NUL in description", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": "with-nul", "description": "a\u0000b"}, status: 400, media: oaProblem},
		{name: "create: name of 65 characters", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": strings.Repeat("n", 65)}, status: 400, media: oaProblem},
		{name: "create: description of 501 characters", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": "desc-too-long", "description": strings.Repeat("d", 501)}, status: 400, media: oaProblem},
		{name: "create: unknown field", op: oaOpCreate, path: a, bearer: admin, body: map[string]string{"name": "with-extra", "colour": "red"}, status: 400, media: oaProblem},
		{name: "create: name of the wrong type", op: oaOpCreate, path: a, bearer: admin, body: map[string]any{"name": 5}, status: 400, media: oaProblem},
		{name: "create: not JSON", op: oaOpCreate, path: a, bearer: admin, body: "{", status: 400, media: oaProblem},
		{name: "create: an array", op: oaOpCreate, path: a, bearer: admin, body: "[]", status: 400, media: oaProblem},
		{name: "create: payload over 10 MiB", op: oaOpCreate, path: a, bearer: admin, body: oaOversized(), status: 413, media: oaJSON},
		{name: "create: encoded slash in orgId", op: oaOpCreate, path: "/orgs/org%2Facme/service-accounts", bearer: admin, body: map[string]string{"name": "slashed"}, status: 404, media: oaJSON, unroutable: true},

		// List.
		{name: "list: admin", op: oaOpList, path: a, bearer: admin, status: 200, media: oaJSON, valid: true},
		{name: "list: member", op: oaOpList, path: a, bearer: member, status: 200, media: oaJSON, valid: true},
		{name: "list: limit 100", op: oaOpList, path: a + "?limit=100", bearer: admin, status: 200, media: oaJSON, valid: true},
		{name: "list: limit 0", op: oaOpList, path: a + "?limit=0", bearer: admin, status: 400, media: oaProblem},
		{name: "list: limit 101", op: oaOpList, path: a + "?limit=101", bearer: admin, status: 400, media: oaProblem},
		{name: "list: limit not a number", op: oaOpList, path: a + "?limit=ten", bearer: admin, status: 400, media: oaProblem},
		{name: "list: forged cursor", op: oaOpList, path: a + "?cursor=c1.AAAA.AAAA", bearer: admin, status: 400, media: oaProblem, valid: true},
		{name: "list: encoded slashes in orgId", op: oaOpList, path: "/orgs/a%2Fb%2Fc/service-accounts", bearer: admin, status: 404, media: oaJSON, unroutable: true},

		// One account.
		{name: "get: admin", op: oaOpGet, path: acctPath, bearer: admin, status: 200, media: oaJSON, valid: true},
		{name: "get: member", op: oaOpGet, path: acctPath, bearer: member, status: 200, media: oaJSON, valid: true},
		{name: "get: unknown id", op: oaOpGet, path: a + "/" + unknownSA, bearer: admin, status: 404, media: oaProblem, valid: true},
		{name: "get: malformed id", op: oaOpGet, path: a + "/nope", bearer: admin, status: 404, media: oaProblem},
		{name: "get: encoded slash in saId", op: oaOpGet, path: a + "/sa%2Fx", bearer: admin, status: 404, media: oaJSON, unroutable: true},
		{name: "delete: unknown id", op: oaOpDelete, path: a + "/" + unknownSA, bearer: admin, status: 404, media: oaProblem, valid: true},
		{name: "delete: deleted already", op: oaOpDelete, path: a + "/" + gone, bearer: admin, status: 404, media: oaProblem, valid: true},
		{name: "delete: malformed id", op: oaOpDelete, path: a + "/nope", bearer: admin, status: 404, media: oaProblem},
		{name: "delete: encoded slash in saId", op: oaOpDelete, path: a + "/sa%2Fx", bearer: admin, status: 404, media: oaJSON, unroutable: true},

		// Tokens.
		{name: "generate: no body", op: oaOpGenerate, path: tokensPath, bearer: admin, status: 201, media: oaJSON, valid: true},
		{name: "generate: nulls", op: oaOpGenerate, path: tokensPath, bearer: admin, body: map[string]any{"name": nil, "expiresInDays": nil}, status: 201, media: oaJSON, valid: true},
		{name: "generate: 365 days", op: oaOpGenerate, path: tokensPath, bearer: admin, body: map[string]any{"expiresInDays": 365}, status: 201, media: oaJSON, valid: true},
		{name: "generate: 0 days", op: oaOpGenerate, path: tokensPath, bearer: admin, body: map[string]any{"expiresInDays": 0}, status: 400, media: oaProblem},
		{name: "generate: 366 days", op: oaOpGenerate, path: tokensPath, bearer: admin, body: map[string]any{"expiresInDays": 366}, status: 400, media: oaProblem},
		{name: "generate: fractional days", op: oaOpGenerate, path: tokensPath, bearer: admin, body: `{"expiresInDays": 1.5}`, status: 400, media: oaProblem},
		{name: "generate: empty name", op: oaOpGenerate, path: tokensPath, bearer: admin, body: map[string]any{"name": "  "}, status: 201, media: oaJSON, valid: true},
		{name: "generate: format character in name", op: oaOpGenerate, path: tokensPath, bearer: admin, body: map[string]any{"name": "lap\ufefftop"}, status: 400, media: oaProblem},
		{name: "generate: name of 65 characters", op: oaOpGenerate, path: tokensPath, bearer: admin, body: map[string]string{"name": strings.Repeat("n", 65)}, status: 400, media: oaProblem},
		{name: "generate: unknown field", op: oaOpGenerate, path: tokensPath, bearer: admin, body: map[string]any{"scopes": []string{"read"}}, status: 400, media: oaProblem},
		{name: "generate: unknown account", op: oaOpGenerate, path: a + "/" + unknownSA + "/tokens", bearer: admin, body: map[string]any{}, status: 404, media: oaProblem, valid: true},
		{name: "generate: malformed account id", op: oaOpGenerate, path: a + "/nope/tokens", bearer: admin, body: map[string]any{}, status: 404, media: oaProblem},
		{name: "generate: active-token cap", op: oaOpGenerate, path: a + "/" + capped + "/tokens", bearer: admin, body: map[string]any{}, status: 409, media: oaProblem, valid: true},
		{name: "generate: payload over 10 MiB", op: oaOpGenerate, path: tokensPath, bearer: admin, body: oaOversized(), status: 413, media: oaJSON},
		{name: "generate: encoded slash in saId", op: oaOpGenerate, path: a + "/x%2Fy/tokens", bearer: admin, body: map[string]any{}, status: 404, media: oaJSON, unroutable: true},
		{name: "tokens: admin", op: oaOpTokens, path: tokensPath, bearer: admin, status: 200, media: oaJSON, valid: true},
		{name: "tokens: member", op: oaOpTokens, path: tokensPath, bearer: member, status: 200, media: oaJSON, valid: true},
		{name: "tokens: unknown account", op: oaOpTokens, path: a + "/" + unknownSA + "/tokens", bearer: admin, status: 404, media: oaProblem, valid: true},
		{name: "tokens: malformed account id", op: oaOpTokens, path: a + "/nope/tokens", bearer: admin, status: 404, media: oaProblem},
		{name: "tokens: encoded slash in saId", op: oaOpTokens, path: a + "/x%2Fy/tokens", bearer: admin, status: 404, media: oaJSON, unroutable: true},
		{name: "revoke: revoked already", op: oaOpRevoke, path: tokensPath + "/" + revoked["id"].(string), bearer: admin, status: 204, valid: true},
		{name: "revoke: unknown token", op: oaOpRevoke, path: tokensPath + "/" + unknownTok, bearer: admin, status: 404, media: oaProblem, valid: true},
		{name: "revoke: malformed token id", op: oaOpRevoke, path: tokensPath + "/nope", bearer: admin, status: 404, media: oaProblem},
		{name: "revoke: encoded slash in tokenId", op: oaOpRevoke, path: tokensPath + "/a%2Fb", bearer: admin, status: 404, media: oaJSON, unroutable: true},

		// Audit.
		{name: "audit: before any run", op: oaOpAudit, path: "/orgs/org_acme/audit", bearer: member, status: 200, media: oaJSON, valid: true},
		{name: "audit: encoded slash in orgId", op: oaOpAudit, path: "/orgs/a%2Fb/audit", bearer: admin, status: 404, media: oaJSON, unroutable: true},

		// The data plane.
		{name: "whoami: token", op: oaOpWhoami, path: "/v1/whoami", bearer: secret, status: 200, media: oaJSON, valid: true},
		{name: "whoami: user", op: oaOpWhoami, path: "/v1/whoami", bearer: member, status: 200, media: oaJSON, valid: true},
		{name: "whoami: lower-case scheme", op: oaOpWhoami, path: "/v1/whoami", header: map[string]string{"Authorization": "bearer " + secret}, status: 200, media: oaJSON, valid: true},
		{name: "whoami: malformed token", op: oaOpWhoami, path: "/v1/whoami", bearer: "otsa_short", status: 401, media: oaJSON, valid: true},
		{name: "whoami: deleted account's token", op: oaOpWhoami, path: "/v1/whoami", bearer: goneSecret, status: 401, media: oaJSON, valid: true},
		{name: "mcp: tools/call whoami", op: oaOpMCP, path: "/mcp/v1", bearer: secret, header: oaMCPAccept, body: oaMCPCall, status: 200, media: oaJSON, valid: true},
		{name: "mcp: initialize", op: oaOpMCP, path: "/mcp/v1", bearer: secret, header: oaMCPAccept, status: 200, media: oaJSON, valid: true,
			body: map[string]any{"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": map[string]any{
				"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "claude-code", "version": "1.0.0"}}}},
		{name: "mcp: notification", op: oaOpMCP, path: "/mcp/v1", bearer: secret, header: oaMCPAccept, body: map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}, status: 202, valid: true},
		{name: "mcp: unknown method", op: oaOpMCP, path: "/mcp/v1", bearer: secret, header: oaMCPAccept, body: map[string]any{"jsonrpc": "2.0", "id": 2, "method": "no/such"}, status: 400, media: oaText, valid: true},
		{name: "mcp: Accept without event streams", op: oaOpMCP, path: "/mcp/v1", bearer: secret, header: map[string]string{"Accept": "application/json"}, body: oaMCPCall, status: 400, media: oaText, valid: true},
		{name: "mcp: MCP headers contradict the body", op: oaOpMCP, path: "/mcp/v1", bearer: secret, status: 400, media: oaJSON, valid: true, body: oaMCPCall,
			header: map[string]string{"Accept": oaMCPAccept["Accept"], "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}},
		{name: "mcp: body over 1 MiB", op: oaOpMCP, path: "/mcp/v1", bearer: secret, header: oaMCPAccept, status: 400, media: oaProblem, valid: true,
			body: map[string]any{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": map[string]any{"name": strings.Repeat("w", 1<<20)}}},
		{name: "mcp: not JSON", op: oaOpMCP, path: "/mcp/v1", bearer: secret, status: 415, media: oaText,
			header: map[string]string{"Accept": oaMCPAccept["Accept"], "Content-Type": "text/plain"}, body: "whoami"},
		{name: "mcp: payload over 10 MiB", op: oaOpMCP, path: "/mcp/v1", bearer: secret, header: oaMCPAccept, body: oaOversized(), status: 413, media: oaJSON},
		{name: "mcp: GET", op: oaOpMCPGet, path: "/mcp/v1", bearer: secret, header: map[string]string{"Accept": "text/event-stream"}, status: 405, media: oaText, valid: true},
		{name: "mcp: DELETE", op: oaOpMCPDelete, path: "/mcp/v1", bearer: secret, status: 405, media: oaText, valid: true},
	}

	// Refusals, through every operation.
	for _, tg := range oaTargets(saID, tokenID) {
		refusal := func(name, bearer string, header map[string]string, status int, valid bool) oaExchange {
			h := maps.Clone(tg.header)
			if h == nil {
				h = map[string]string{}
			}
			maps.Copy(h, header)
			return oaExchange{name: tg.op + ": " + name, op: tg.op, path: tg.path, bearer: bearer, header: h, body: tg.body,
				status: status, media: oaJSON, valid: valid}
		}
		cases = append(cases,
			refusal("no Authorization header", "", nil, 401, false),
			refusal("another scheme", "", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, false),
			refusal("revoked token", revoked["token"].(string), nil, 401, true),
			refusal("unknown token", unknownToken(t), nil, 401, true),
		)
		if oaIsManagement(tg.op) {
			cases = append(cases,
				refusal("service-account token", secret, nil, 403, true),
				refusal("another org's admin", other, nil, 403, true))
			if !strings.HasPrefix(tg.op, "GET") {
				cases = append(cases, refusal("member writing", member, nil, 403, true))
			}
		}
	}
	for _, ex := range cases {
		t.Run(ex.name, func(t *testing.T) { c.do(t, s.URL, ex) })
	}

	// Outcomes that need the state above to move on.
	t.Run("list: pages", func(t *testing.T) {
		first := c.do(t, s.URL, oaExchange{name: "first page", op: oaOpList, path: a + "?limit=1", bearer: admin, status: 200, media: oaJSON, valid: true})
		next, ok := first.body["nextCursor"].(string)
		if !ok {
			t.Fatalf("the first page of one has no nextCursor: %s", first.raw)
		}
		c.do(t, s.URL, oaExchange{name: "next page", op: oaOpList, path: a + "?limit=1&cursor=" + url.QueryEscape(next), bearer: member, status: 200, media: oaJSON, valid: true})
	})
	t.Run("whoami: token used before", func(t *testing.T) {
		// lastUsedAt is the use before this one: wait for the first use to be written.
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := c.do(t, s.URL, oaExchange{name: "whoami", op: oaOpWhoami, path: "/v1/whoami", bearer: secret, status: 200, media: oaJSON, valid: true})
			if r.body["lastUsedAt"] != nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("lastUsedAt stayed null")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("audit: after a run", func(t *testing.T) {
		// A year on, every token is stale or never used and due for rotation.
		later := time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339)
		call(t, "POST", s.URL+"/local/audit/run", "", map[string]string{"now": later}).want(t, 200)
		r := c.do(t, s.URL, oaExchange{name: "audit", op: oaOpAudit, path: "/orgs/org_acme/audit", bearer: admin, status: 200, media: oaJSON, valid: true})
		if r.body["generatedAt"] == nil || len(r.body["findings"].([]any)) == 0 {
			t.Fatalf("the audit a year on found nothing: %s", r.raw)
		}
	})
	t.Run("delete and revoke", func(t *testing.T) {
		c.do(t, s.URL, oaExchange{name: "revoke", op: oaOpRevoke, path: tokensPath + "/" + tokenID, bearer: admin, status: 204, valid: true})
		c.do(t, s.URL, oaExchange{name: "delete", op: oaOpDelete, path: acctPath, bearer: admin, status: 204, valid: true})
	})
}

// oaFailures are the exchanges of tg while DynamoDB fails: the authorizer, which reads a
// token's credential, fails closed on every route (API Gateway's 500), and a management
// function called by a user, whose JWT needs no read, answers status.
func oaFailures(tg oaTarget, admin, secret string, status int) []oaExchange {
	out := []oaExchange{{name: "token", op: tg.op, path: tg.path, bearer: secret, header: tg.header, body: tg.body,
		status: 500, media: oaJSON, valid: true}}
	if oaIsManagement(tg.op) {
		out = append(out, oaExchange{name: "admin", op: tg.op, path: tg.path, bearer: admin, body: tg.body,
			status: status, media: oaProblem, valid: true})
	}
	return out
}

// oaFaultStack is a stack for the outcomes a healthy, correctly configured deployment never
// shows: its DynamoDB fails while fault is set, its authorizer's Allow policies cover every
// route (as a stale or wrong policy would), so that the functions' own org and role checks
// answer; and its users come from idp, which can sign a user with no org.
type oaFaultStack struct {
	*local.Stack
	idp *localidp.Issuer
	tap *dynamotest.Tap
}

func oaStartFaultStack(t *testing.T) *oaFaultStack {
	t.Helper()
	fs := &oaFaultStack{}
	var idp atomic.Pointer[localidp.Issuer]
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { idp.Load().ServeHTTP(w, r) }))
	t.Cleanup(jwks.Close)
	issuer, err := localidp.New(jwks.URL)
	if err != nil {
		t.Fatal(err)
	}
	idp.Store(issuer)
	fs.idp = issuer

	fs.tap = &dynamotest.Tap{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := local.Start(context.Background(), ln, local.Options{
		Template:     "../../template.yaml",
		Params:       map[string]string{"IdentityIssuer": jwks.URL, "IdentityJwksUrl": jwks.URL, "IdentityAuthorizedParties": ""},
		Logs:         io.Discard,
		Transport:    func(next http.RoundTripper) http.RoundTripper { fs.tap.Next = next; return fs.tap },
		RetryBackoff: time.Millisecond,
		Decorate: func(id string, h any) any {
			if a, ok := h.(wire.AuthorizerHandler); ok && id == "AuthorizerFunction" {
				return wire.AuthorizerHandler(oaAllowEverything(a))
			}
			return h
		},
	})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	fs.Stack = s
	return fs
}

// oaAllowEverything widens every Allow policy of a to all routes of the stage. Deny policies
// and refusals stay as they are.
func oaAllowEverything(a wire.AuthorizerHandler) wire.AuthorizerHandler {
	return func(ctx context.Context, req events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
		resp, err := a(ctx, req)
		if err != nil {
			return resp, err
		}
		parts := strings.SplitN(req.MethodArn, "/", 3) // arn…:{apiId}, {stage}, {METHOD}/{path}
		for i, st := range resp.PolicyDocument.Statement {
			if st.Effect == "Allow" && len(parts) == 3 {
				resp.PolicyDocument.Statement[i].Resource = []string{parts[0] + "/" + parts[1] + "/*"}
			}
		}
		return resp, nil
	}
}

func (fs *oaFaultStack) user(t *testing.T, org, role, user string) string {
	t.Helper()
	now := time.Now()
	if org == "" {
		tok, err := fs.idp.Sign(map[string]any{"iss": fs.idp.URL, "sub": user, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tok, err := fs.idp.Mint(user, org, role, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// oaDriveFaults drives an oaFaultStack through the outcomes only it can produce: the
// functions' own 403s, 503 and 500 from DynamoDB failures, the authorizer failing closed, and
// a user without an org.
func oaDriveFaults(t *testing.T, c *oaContract) {
	fs := oaStartFaultStack(t)
	admin := fs.user(t, "org_acme", "admin", "user_alice")
	member := fs.user(t, "org_acme", "member", "user_bob")
	other := fs.user(t, "org_beta", "admin", "user_carol")
	orgless := fs.user(t, "", "", "user_dave")
	const a = "/orgs/org_acme/service-accounts"

	// A real token, to reach the functions' refusal of service-account tokens.
	saID := c.do(t, fs.URL, oaExchange{name: "setup: create", op: oaOpCreate, path: a, bearer: admin,
		body: map[string]string{"name": "claude-code-ops"}, status: 201, media: oaJSON, valid: true}).body["id"].(string)
	issued := c.do(t, fs.URL, oaExchange{name: "setup: generate", op: oaOpGenerate, path: a + "/" + saID + "/tokens", bearer: admin,
		status: 201, media: oaJSON, valid: true}).body
	secret, tokenID := issued["token"].(string), issued["id"].(string)

	all := func(dynamotest.Call) bool { return true }
	throttled := func() { fs.tap.Reject(all, "ThrottlingException", "Rate exceeded") }
	malformed := func() { fs.tap.Reject(all, "ValidationException", "One or more parameter values were invalid") }
	type phase struct {
		name  string
		fault func()
		run   func(tg oaTarget) []oaExchange
	}
	phases := []phase{
		{name: "functions refuse what the policy let through", run: func(tg oaTarget) []oaExchange {
			if !oaIsManagement(tg.op) {
				return []oaExchange{{name: "user without an org", op: tg.op, path: tg.path, bearer: orgless, header: tg.header, body: tg.body, status: 403, media: oaJSON, valid: true}}
			}
			out := []oaExchange{
				{name: "service-account token", op: tg.op, path: tg.path, bearer: secret, body: tg.body, status: 403, media: oaProblem, valid: true},
				{name: "another org's admin", op: tg.op, path: tg.path, bearer: other, body: tg.body, status: 403, media: oaProblem, valid: true},
			}
			if !strings.HasPrefix(tg.op, "GET") {
				out = append(out, oaExchange{name: "member writing", op: tg.op, path: tg.path, bearer: member, body: tg.body, status: 403, media: oaProblem, valid: true})
			}
			return out
		}},
		{name: "DynamoDB throttles", fault: throttled, run: func(tg oaTarget) []oaExchange {
			return oaFailures(tg, admin, secret, 503)
		}},
		{name: "DynamoDB rejects the request", fault: malformed, run: func(tg oaTarget) []oaExchange {
			return oaFailures(tg, admin, secret, 500)
		}},
	}
	for _, p := range phases {
		t.Run(p.name, func(t *testing.T) {
			if p.fault != nil {
				p.fault()
			}
			defer fs.tap.Fail(nil)
			for _, tg := range oaTargets(saID, tokenID) {
				for _, ex := range p.run(tg) {
					ex.name = tg.op + ": " + ex.name
					t.Run(ex.name, func(t *testing.T) {
						r := c.do(t, fs.URL, ex)
						if r.status == 503 && r.header.Get("Retry-After") == "" {
							t.Errorf("503 without Retry-After")
						}
						if r.status == 500 && strings.Contains(r.raw, "Exception") {
							t.Errorf("the 500 leaks its cause: %s", r.raw)
						}
					})
				}
			}
		})
	}
	// The webhook, which no authorizer guards: a signed delivery while DynamoDB fails. The
	// faults fail Secrets Manager too, so a first delivery has the function read its secret.
	warm, h := oaSignedBody(t, fs.Stack, `{"type":"user.created","data":{"id":"user_1"}}`)
	c.do(t, fs.URL, oaExchange{name: "webhook: setup", op: oaOpWebhook, path: "/v1/identity/webhooks",
		header: h, body: warm, status: 200, media: oaJSON, valid: true})
	for _, f := range []struct {
		fault  func()
		status int
	}{{throttled, 503}, {malformed, 500}} {
		body, h := oaSigned(t, fs.Stack, "org_webhook_fault")
		f.fault()
		c.do(t, fs.URL, oaExchange{name: "webhook while DynamoDB fails", op: oaOpWebhook, path: "/v1/identity/webhooks",
			header: h, body: body, status: f.status, media: oaProblem, valid: true})
		fs.tap.Fail(nil)
	}
}

// oaSigned is a delivery of organization.deleted for org signed as the identity provider
// signs it for the stack: its body and its Svix headers.
func oaSigned(t *testing.T, s *local.Stack, org string) (string, map[string]string) {
	t.Helper()
	return oaSignedBody(t, s, string(localidp.OrgDeleted(org, time.Now())))
}

// oaSignedBody is a delivery of body signed as the identity provider signs it for the stack.
func oaSignedBody(t *testing.T, s *local.Stack, body string) (string, map[string]string) {
	t.Helper()
	h, err := s.SignWebhook([]byte(body), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	header := map[string]string{}
	for k := range h {
		header[k] = h.Get(k)
	}
	return body, header
}

// oaDriveWebhook drives the identity provider's webhook: acted on, repeated, ignored, and
// each refusal.
func oaDriveWebhook(t *testing.T, c *oaContract, s *local.Stack) {
	const path = "/v1/identity/webhooks"
	do := func(ex oaExchange) response {
		t.Helper()
		ex.op, ex.path = oaOpWebhook, path
		return c.do(t, s.URL, ex)
	}
	body, h := oaSigned(t, s, "org_webhook")
	if r := do(oaExchange{name: "organization.deleted", header: h, body: body, status: 200, media: oaJSON, valid: true}); r.body["repeated"] != false {
		t.Errorf("first delivery: %s", r.raw)
	}
	if r := do(oaExchange{name: "the same delivery again", header: h, body: body, status: 200, media: oaJSON, valid: true}); r.body["repeated"] != true {
		t.Errorf("repeated delivery: %s", r.raw)
	}
	tampered := strings.Replace(body, "org_webhook", "org_acme", 1)
	do(oaExchange{name: "a tampered body", header: h, body: tampered, status: 401, media: oaProblem, valid: true})
	do(oaExchange{name: "no signature", body: body, status: 401, media: oaProblem, valid: false})
	do(oaExchange{name: "over 64 KiB", header: h, body: body + strings.Repeat(" ", 64<<10), status: 413, media: oaProblem, valid: true})
	// What the provider signs but the system has no use for, or cannot read.
	for _, ex := range []struct {
		name, body string
		status     int
		media      string
	}{
		{"another event type", `{"type":"user.created","data":{"id":"user_1"}}`, 200, oaJSON},
		{"no org id", `{"type":"organization.deleted","data":{"object":"organization","deleted":true}}`, 400, oaProblem},
	} {
		body, h := oaSignedBody(t, s, ex.body)
		do(oaExchange{name: ex.name, header: h, body: body, status: ex.status, media: ex.media, valid: true})
	}
}
