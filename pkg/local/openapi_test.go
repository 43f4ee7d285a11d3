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

// specPath is the published contract; these tests hold the local stack to it and it to
// the local stack.
const specPath = "../../openapi.yaml"

// contract is openapi.yaml loaded for validation, and the outcomes observed so far.
type contract struct {
	doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[outcome]bool
}

// outcome is one documented answer of one operation: "POST /mcp/v1" 400 "text/plain". media
// is "" for a response without a body.
type outcome struct {
	op     string
	status int
	media  string
}

func loadContract(t *testing.T) *contract {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(specPath)
	if err != nil {
		t.Fatalf("load %s: %v", specPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", specPath, err)
	}
	// The servers name AWS and port 3000; the stacks under test listen on random ports, and
	// the routes are the same under any server, so route on paths alone.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{doc: doc, router: router, seen: map[outcome]bool{}}
}

// operations returns every documented operation as "METHOD /template".
func (c *contract) operations() []string {
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
func (c *contract) documented() []outcome {
	var out []outcome
	for _, op := range c.operations() {
		method, path, _ := strings.Cut(op, " ")
		for code, ref := range c.doc.Paths.Value(path).GetOperation(method).Responses.Map() {
			var status int
			if _, err := fmt.Sscan(code, &status); err != nil {
				continue // "default" or a range: not used by this contract
			}
			if len(ref.Value.Content) == 0 {
				out = append(out, outcome{op, status, ""})
			}
			for media := range ref.Value.Content {
				out = append(out, outcome{op, status, media})
			}
		}
	}
	return out
}

// contractCase is one request to a stack and what the contract says of it and its answer.
type contractCase struct {
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
func (c *contract) do(t *testing.T, base string, ex contractCase) response {
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
		Options: &openapi3filter.Options{AuthenticationFunc: bearerScheme, MultiError: true},
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
	c.seen[outcome{ex.op, r.status, media}] = true
	c.mu.Unlock()
	return r
}

// route finds the documented operation of a request, which must be ex.op. An unroutable
// path is matched to ex.op by hand: the router, like the local stack, decodes an encoded '/'
// before matching, so it would find a different operation or none.
func (c *contract) route(t *testing.T, req *http.Request, ex contractCase) (*routers.Route, map[string]string) {
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

// bearerScheme checks the contract's one security scheme, http bearer: the credential
// itself is the authorizer's business, its presence and scheme are the contract's.
func bearerScheme(_ context.Context, in *openapi3filter.AuthenticationInput) error {
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
func (c *contract) requireEveryOutcome(t *testing.T) {
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
	c := loadContract(t)
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
	opCreate    = "POST /orgs/{orgId}/service-accounts"
	opList      = "GET /orgs/{orgId}/service-accounts"
	opGet       = "GET /orgs/{orgId}/service-accounts/{saId}"
	opDelete    = "DELETE /orgs/{orgId}/service-accounts/{saId}"
	opGenerate  = "POST /orgs/{orgId}/service-accounts/{saId}/tokens"
	opTokens    = "GET /orgs/{orgId}/service-accounts/{saId}/tokens"
	opRevoke    = "DELETE /orgs/{orgId}/service-accounts/{saId}/tokens/{tokenId}"
	opAudit     = "GET /orgs/{orgId}/audit"
	opWhoami    = "GET /v1/whoami"
	opMCP       = "POST /mcp/v1"
	opMCPGet    = "GET /mcp/v1"
	opMCPDelete = "DELETE /mcp/v1"
	opWebhook   = "POST /v1/identity/webhooks"
)

const (
	mediaJSON    = "application/json"
	mediaProblem = "application/problem+json"
	mediaText    = "text/plain"
)

// mcpAccept is the Accept header streamable HTTP requires of MCP clients.
var mcpAccept = map[string]string{"Accept": "application/json, text/event-stream"}

// mcpWhoamiCall is a JSON-RPC call of the whoami tool, as an MCP client makes it.
var mcpWhoamiCall = map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
	"params": map[string]any{"name": "whoami", "arguments": map[string]any{}}}

// opTarget is one operation with a concrete path and an acceptable body, to drive the same
// outcome (a refusal, a failure) through every operation.
type opTarget struct {
	op, path string
	body     any
	header   map[string]string
}

// everyOperation is an opTarget for each operation, on the account saID and its token tokenID.
func everyOperation(saID, tokenID string) []opTarget {
	a := "/orgs/org_acme/service-accounts"
	return []opTarget{
		{op: opCreate, path: a, body: map[string]string{"name": "ci-pipeline"}},
		{op: opList, path: a},
		{op: opGet, path: a + "/" + saID},
		{op: opDelete, path: a + "/" + saID},
		{op: opGenerate, path: a + "/" + saID + "/tokens", body: map[string]any{}},
		{op: opTokens, path: a + "/" + saID + "/tokens"},
		{op: opRevoke, path: a + "/" + saID + "/tokens/" + tokenID},
		{op: opAudit, path: "/orgs/org_acme/audit"},
		{op: opWhoami, path: "/v1/whoami"},
		{op: opMCP, path: "/mcp/v1", body: mcpWhoamiCall, header: mcpAccept},
		{op: opMCPGet, path: "/mcp/v1"},
		{op: opMCPDelete, path: "/mcp/v1"},
	}
}

// isManagement says whether tg is an operation of the management API, under /orgs/.
func (tg opTarget) isManagement() bool { return strings.Contains(tg.op, " /orgs/") }

// oversizedBody is a body API Gateway refuses before anything runs: over 10 MiB.
func oversizedBody() map[string]string {
	return map[string]string{"name": "x", "description": strings.Repeat("a", 10<<20)}
}

// TestOpenAPIContract drives every route and every documented outcome through the local
// stack — as admins, members, another org's admin, service-account tokens, with no header,
// revoked and deleted tokens, malformed input and unknown ids — through a second stack whose
// DynamoDB fails on demand and whose authorizer allows everything, to reach the functions'
// own refusals and failures, and through a third whose stage throttles. Every request and response is validated against
// openapi.yaml, and every outcome it documents must have been produced.
func TestOpenAPIContract(t *testing.T) {
	c := loadContract(t)
	stack := t.Run("Stack", func(t *testing.T) { c.driveStack(t) })
	faults := t.Run("Faults", func(t *testing.T) { c.driveFaults(t) })
	throttled := t.Run("Throttled", func(t *testing.T) { c.driveThrottled(t) })
	if stack && faults && throttled { // after a failure, outcomes not reached would only repeat it
		c.requireEveryOutcome(t)
	}
}

// driveThrottled drives a stack whose stage accepts one request a second, the least its
// parameters allow: right after a request that takes the second's token, API Gateway's
// throttling answers every route before the authorizer runs.
func (c *contract) driveThrottled(t *testing.T) {
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
	c.do(t, s.URL, contractCase{name: "the burst of one", op: opWhoami, path: "/v1/whoami", bearer: admin,
		status: 200, media: mediaJSON, valid: true})
	webhook := opTarget{op: opWebhook, path: "/v1/identity/webhooks", body: `{"type":"user.created"}`,
		header: map[string]string{"svix-id": "msg_1", "svix-timestamp": "1", "svix-signature": "v1,x"}}
	for _, tg := range append(everyOperation("sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "tok_01JAAAAAAAAAAAAAAAAAAAAAAA"), webhook) {
		t.Run(tg.op, func(t *testing.T) {
			call(t, "GET", s.URL+"/v1/whoami", admin, nil) // takes any token refilled since
			c.do(t, s.URL, contractCase{name: tg.op + ": throttled", op: tg.op, path: tg.path, bearer: admin,
				header: tg.header, body: tg.body, status: 429, media: mediaJSON, valid: true})
		})
	}
}

// driveStack drives the local stack as template.yaml configures it.
func (c *contract) driveStack(t *testing.T) {
	s, _ := startStack(t)
	admin := devToken(t, s, "org_acme", "admin", "user_alice")
	member := devToken(t, s, "org_acme", "member", "user_bob")
	other := devToken(t, s, "org_beta", "admin", "user_carol")
	const a = "/orgs/org_acme/service-accounts"
	do := func(ex contractCase) response { t.Helper(); return c.do(t, s.URL, ex) }

	// State for the cases below, itself created through the contract: an account with an
	// active token, a revoked token, and the token of a deleted account.
	acct := do(contractCase{name: "setup: create", op: opCreate, path: a, bearer: admin,
		body:   map[string]string{"name": "claude-code-dev-team", "description": "Claude Code for the dev team"},
		status: 201, media: mediaJSON, valid: true}).body
	saID := acct["id"].(string)
	issued := do(contractCase{name: "setup: generate", op: opGenerate, path: a + "/" + saID + "/tokens", bearer: admin,
		body: map[string]any{"name": "laptop", "expiresInDays": 90}, status: 201, media: mediaJSON, valid: true})
	if issued.header.Get("Cache-Control") != "no-store" {
		t.Errorf("the issued token's response is cacheable: Cache-Control %q", issued.header.Get("Cache-Control"))
	}
	secret, tokenID := issued.body["token"].(string), issued.body["id"].(string)
	revoked := do(contractCase{name: "setup: generate to revoke", op: opGenerate, path: a + "/" + saID + "/tokens", bearer: admin,
		status: 201, media: mediaJSON, valid: true}).body
	do(contractCase{name: "setup: revoke", op: opRevoke, path: a + "/" + saID + "/tokens/" + revoked["id"].(string), bearer: admin,
		status: 204, valid: true})
	gone := do(contractCase{name: "setup: account to delete", op: opCreate, path: a, bearer: admin,
		body: map[string]string{"name": "jenkins-legacy"}, status: 201, media: mediaJSON, valid: true}).body["id"].(string)
	goneSecret := do(contractCase{name: "setup: its token", op: opGenerate, path: a + "/" + gone + "/tokens", bearer: admin,
		body: map[string]any{}, status: 201, media: mediaJSON, valid: true}).body["token"].(string)
	do(contractCase{name: "setup: delete it", op: opDelete, path: a + "/" + gone, bearer: admin, status: 204, valid: true})
	c.driveWebhook(t, s)
	capped := do(contractCase{name: "setup: account at the token cap", op: opCreate, path: a, bearer: admin,
		body: map[string]string{"name": "github-actions-prod"}, status: 201, media: mediaJSON, valid: true}).body["id"].(string)
	for i := range 10 {
		do(contractCase{name: fmt.Sprintf("setup: token %d of 10", i+1), op: opGenerate, path: a + "/" + capped + "/tokens",
			bearer: admin, status: 201, media: mediaJSON, valid: true})
	}
	const unknownSA, unknownTok = "sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "tok_01JAAAAAAAAAAAAAAAAAAAAAAA"
	acctPath, tokensPath := a+"/"+saID, a+"/"+saID+"/tokens"

	cases := []contractCase{
		// Create.
		{name: "create: vague name gets advice", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": "test"}, status: 201, media: mediaJSON, valid: true},
		{name: "create: null description", op: opCreate, path: a, bearer: admin, body: map[string]any{"name": "datadog-sync", "description": nil}, status: 201, media: mediaJSON, valid: true},
		{name: "create: name taken ignoring case", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": "CLAUDE-CODE-DEV-TEAM"}, status: 409, media: mediaProblem, valid: true},
		{name: "create: no name", op: opCreate, path: a, bearer: admin, body: map[string]string{}, status: 400, media: mediaProblem},
		{name: "create: empty body", op: opCreate, path: a, bearer: admin, body: "", status: 400, media: mediaProblem},
		{name: "create: name padded with white space", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": " \tterraform-cloud\n"}, status: 201, media: mediaJSON, valid: true},
		{name: "create: 64 characters padded to 70", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": "   " + strings.Repeat("n", 64) + "   "}, status: 201, media: mediaJSON, valid: true},
		{name: "create: control character in name", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": "ci\u0085bot"}, status: 400, media: mediaProblem},
		{name: "create: invisible character in name", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": "ci\u200bbot"}, status: 400, media: mediaProblem},
		{name: "create: name only white space", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": " \u00a0\t"}, status: 400, media: mediaProblem},
		{name: "create: multi-line description", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": "sentry-relay", "description": "Relays errors.\n\tOwned by SRE."}, status: 201, media: mediaJSON, valid: true},
		{name: "create: NUL in description", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": "with-nul", "description": "a\u0000b"}, status: 400, media: mediaProblem},
		{name: "create: name of 65 characters", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": strings.Repeat("n", 65)}, status: 400, media: mediaProblem},
		{name: "create: description of 501 characters", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": "desc-too-long", "description": strings.Repeat("d", 501)}, status: 400, media: mediaProblem},
		{name: "create: unknown field", op: opCreate, path: a, bearer: admin, body: map[string]string{"name": "with-extra", "colour": "red"}, status: 400, media: mediaProblem},
		{name: "create: name of the wrong type", op: opCreate, path: a, bearer: admin, body: map[string]any{"name": 5}, status: 400, media: mediaProblem},
		{name: "create: not JSON", op: opCreate, path: a, bearer: admin, body: "{", status: 400, media: mediaProblem},
		{name: "create: an array", op: opCreate, path: a, bearer: admin, body: "[]", status: 400, media: mediaProblem},
		{name: "create: payload over 10 MiB", op: opCreate, path: a, bearer: admin, body: oversizedBody(), status: 413, media: mediaJSON},
		{name: "create: encoded slash in orgId", op: opCreate, path: "/orgs/org%2Facme/service-accounts", bearer: admin, body: map[string]string{"name": "slashed"}, status: 404, media: mediaJSON, unroutable: true},

		// List.
		{name: "list: admin", op: opList, path: a, bearer: admin, status: 200, media: mediaJSON, valid: true},
		{name: "list: member", op: opList, path: a, bearer: member, status: 200, media: mediaJSON, valid: true},
		{name: "list: limit 100", op: opList, path: a + "?limit=100", bearer: admin, status: 200, media: mediaJSON, valid: true},
		{name: "list: limit 0", op: opList, path: a + "?limit=0", bearer: admin, status: 400, media: mediaProblem},
		{name: "list: limit 101", op: opList, path: a + "?limit=101", bearer: admin, status: 400, media: mediaProblem},
		{name: "list: limit not a number", op: opList, path: a + "?limit=ten", bearer: admin, status: 400, media: mediaProblem},
		{name: "list: forged cursor", op: opList, path: a + "?cursor=c1.AAAA.AAAA", bearer: admin, status: 400, media: mediaProblem, valid: true},
		{name: "list: encoded slashes in orgId", op: opList, path: "/orgs/a%2Fb%2Fc/service-accounts", bearer: admin, status: 404, media: mediaJSON, unroutable: true},

		// One account.
		{name: "get: admin", op: opGet, path: acctPath, bearer: admin, status: 200, media: mediaJSON, valid: true},
		{name: "get: member", op: opGet, path: acctPath, bearer: member, status: 200, media: mediaJSON, valid: true},
		{name: "get: unknown id", op: opGet, path: a + "/" + unknownSA, bearer: admin, status: 404, media: mediaProblem, valid: true},
		{name: "get: malformed id", op: opGet, path: a + "/nope", bearer: admin, status: 404, media: mediaProblem},
		{name: "get: encoded slash in saId", op: opGet, path: a + "/sa%2Fx", bearer: admin, status: 404, media: mediaJSON, unroutable: true},
		{name: "delete: unknown id", op: opDelete, path: a + "/" + unknownSA, bearer: admin, status: 404, media: mediaProblem, valid: true},
		{name: "delete: deleted already", op: opDelete, path: a + "/" + gone, bearer: admin, status: 404, media: mediaProblem, valid: true},
		{name: "delete: malformed id", op: opDelete, path: a + "/nope", bearer: admin, status: 404, media: mediaProblem},
		{name: "delete: encoded slash in saId", op: opDelete, path: a + "/sa%2Fx", bearer: admin, status: 404, media: mediaJSON, unroutable: true},

		// Tokens.
		{name: "generate: no body", op: opGenerate, path: tokensPath, bearer: admin, status: 201, media: mediaJSON, valid: true},
		{name: "generate: nulls", op: opGenerate, path: tokensPath, bearer: admin, body: map[string]any{"name": nil, "expiresInDays": nil}, status: 201, media: mediaJSON, valid: true},
		{name: "generate: 365 days", op: opGenerate, path: tokensPath, bearer: admin, body: map[string]any{"expiresInDays": 365}, status: 201, media: mediaJSON, valid: true},
		{name: "generate: 0 days", op: opGenerate, path: tokensPath, bearer: admin, body: map[string]any{"expiresInDays": 0}, status: 400, media: mediaProblem},
		{name: "generate: 366 days", op: opGenerate, path: tokensPath, bearer: admin, body: map[string]any{"expiresInDays": 366}, status: 400, media: mediaProblem},
		{name: "generate: fractional days", op: opGenerate, path: tokensPath, bearer: admin, body: `{"expiresInDays": 1.5}`, status: 400, media: mediaProblem},
		{name: "generate: empty name", op: opGenerate, path: tokensPath, bearer: admin, body: map[string]any{"name": "  "}, status: 201, media: mediaJSON, valid: true},
		{name: "generate: format character in name", op: opGenerate, path: tokensPath, bearer: admin, body: map[string]any{"name": "lap\ufefftop"}, status: 400, media: mediaProblem},
		{name: "generate: name of 65 characters", op: opGenerate, path: tokensPath, bearer: admin, body: map[string]string{"name": strings.Repeat("n", 65)}, status: 400, media: mediaProblem},
		{name: "generate: unknown field", op: opGenerate, path: tokensPath, bearer: admin, body: map[string]any{"scopes": []string{"read"}}, status: 400, media: mediaProblem},
		{name: "generate: unknown account", op: opGenerate, path: a + "/" + unknownSA + "/tokens", bearer: admin, body: map[string]any{}, status: 404, media: mediaProblem, valid: true},
		{name: "generate: malformed account id", op: opGenerate, path: a + "/nope/tokens", bearer: admin, body: map[string]any{}, status: 404, media: mediaProblem},
		{name: "generate: active-token cap", op: opGenerate, path: a + "/" + capped + "/tokens", bearer: admin, body: map[string]any{}, status: 409, media: mediaProblem, valid: true},
		{name: "generate: payload over 10 MiB", op: opGenerate, path: tokensPath, bearer: admin, body: oversizedBody(), status: 413, media: mediaJSON},
		{name: "generate: encoded slash in saId", op: opGenerate, path: a + "/x%2Fy/tokens", bearer: admin, body: map[string]any{}, status: 404, media: mediaJSON, unroutable: true},
		{name: "tokens: admin", op: opTokens, path: tokensPath, bearer: admin, status: 200, media: mediaJSON, valid: true},
		{name: "tokens: member", op: opTokens, path: tokensPath, bearer: member, status: 200, media: mediaJSON, valid: true},
		{name: "tokens: unknown account", op: opTokens, path: a + "/" + unknownSA + "/tokens", bearer: admin, status: 404, media: mediaProblem, valid: true},
		{name: "tokens: malformed account id", op: opTokens, path: a + "/nope/tokens", bearer: admin, status: 404, media: mediaProblem},
		{name: "tokens: encoded slash in saId", op: opTokens, path: a + "/x%2Fy/tokens", bearer: admin, status: 404, media: mediaJSON, unroutable: true},
		{name: "revoke: revoked already", op: opRevoke, path: tokensPath + "/" + revoked["id"].(string), bearer: admin, status: 204, valid: true},
		{name: "revoke: unknown token", op: opRevoke, path: tokensPath + "/" + unknownTok, bearer: admin, status: 404, media: mediaProblem, valid: true},
		{name: "revoke: malformed token id", op: opRevoke, path: tokensPath + "/nope", bearer: admin, status: 404, media: mediaProblem},
		{name: "revoke: encoded slash in tokenId", op: opRevoke, path: tokensPath + "/a%2Fb", bearer: admin, status: 404, media: mediaJSON, unroutable: true},

		// Audit.
		{name: "audit: before any run", op: opAudit, path: "/orgs/org_acme/audit", bearer: member, status: 200, media: mediaJSON, valid: true},
		{name: "audit: encoded slash in orgId", op: opAudit, path: "/orgs/a%2Fb/audit", bearer: admin, status: 404, media: mediaJSON, unroutable: true},

		// The data plane.
		{name: "whoami: token", op: opWhoami, path: "/v1/whoami", bearer: secret, status: 200, media: mediaJSON, valid: true},
		{name: "whoami: user", op: opWhoami, path: "/v1/whoami", bearer: member, status: 200, media: mediaJSON, valid: true},
		{name: "whoami: lower-case scheme", op: opWhoami, path: "/v1/whoami", header: map[string]string{"Authorization": "bearer " + secret}, status: 200, media: mediaJSON, valid: true},
		{name: "whoami: malformed token", op: opWhoami, path: "/v1/whoami", bearer: "otsa_short", status: 401, media: mediaJSON, valid: true},
		{name: "whoami: deleted account's token", op: opWhoami, path: "/v1/whoami", bearer: goneSecret, status: 401, media: mediaJSON, valid: true},
		{name: "mcp: tools/call whoami", op: opMCP, path: "/mcp/v1", bearer: secret, header: mcpAccept, body: mcpWhoamiCall, status: 200, media: mediaJSON, valid: true},
		{name: "mcp: initialize", op: opMCP, path: "/mcp/v1", bearer: secret, header: mcpAccept, status: 200, media: mediaJSON, valid: true,
			body: map[string]any{"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": map[string]any{
				"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "claude-code", "version": "1.0.0"}}}},
		{name: "mcp: notification", op: opMCP, path: "/mcp/v1", bearer: secret, header: mcpAccept, body: map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"}, status: 202, valid: true},
		{name: "mcp: unknown method", op: opMCP, path: "/mcp/v1", bearer: secret, header: mcpAccept, body: map[string]any{"jsonrpc": "2.0", "id": 2, "method": "no/such"}, status: 400, media: mediaText, valid: true},
		{name: "mcp: Accept without event streams", op: opMCP, path: "/mcp/v1", bearer: secret, header: map[string]string{"Accept": "application/json"}, body: mcpWhoamiCall, status: 400, media: mediaText, valid: true},
		{name: "mcp: MCP headers contradict the body", op: opMCP, path: "/mcp/v1", bearer: secret, status: 400, media: mediaJSON, valid: true, body: mcpWhoamiCall,
			header: map[string]string{"Accept": mcpAccept["Accept"], "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}},
		{name: "mcp: body over 1 MiB", op: opMCP, path: "/mcp/v1", bearer: secret, header: mcpAccept, status: 400, media: mediaProblem, valid: true,
			body: map[string]any{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": map[string]any{"name": strings.Repeat("w", 1<<20)}}},
		{name: "mcp: not JSON", op: opMCP, path: "/mcp/v1", bearer: secret, status: 415, media: mediaText,
			header: map[string]string{"Accept": mcpAccept["Accept"], "Content-Type": "text/plain"}, body: "whoami"},
		{name: "mcp: payload over 10 MiB", op: opMCP, path: "/mcp/v1", bearer: secret, header: mcpAccept, body: oversizedBody(), status: 413, media: mediaJSON},
		{name: "mcp: GET", op: opMCPGet, path: "/mcp/v1", bearer: secret, header: map[string]string{"Accept": "text/event-stream"}, status: 405, media: mediaText, valid: true},
		{name: "mcp: DELETE", op: opMCPDelete, path: "/mcp/v1", bearer: secret, status: 405, media: mediaText, valid: true},
	}

	// Refusals, through every operation.
	for _, tg := range everyOperation(saID, tokenID) {
		refusal := func(name, bearer string, header map[string]string, status int, valid bool) contractCase {
			h := maps.Clone(tg.header)
			if h == nil {
				h = map[string]string{}
			}
			maps.Copy(h, header)
			return contractCase{name: tg.op + ": " + name, op: tg.op, path: tg.path, bearer: bearer, header: h, body: tg.body,
				status: status, media: mediaJSON, valid: valid}
		}
		cases = append(cases,
			refusal("no Authorization header", "", nil, 401, false),
			refusal("another scheme", "", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, false),
			refusal("revoked token", revoked["token"].(string), nil, 401, true),
			refusal("unknown token", unknownToken(t), nil, 401, true),
		)
		if tg.isManagement() {
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
		first := c.do(t, s.URL, contractCase{name: "first page", op: opList, path: a + "?limit=1", bearer: admin, status: 200, media: mediaJSON, valid: true})
		next, ok := first.body["nextCursor"].(string)
		if !ok {
			t.Fatalf("the first page of one has no nextCursor: %s", first.raw)
		}
		c.do(t, s.URL, contractCase{name: "next page", op: opList, path: a + "?limit=1&cursor=" + url.QueryEscape(next), bearer: member, status: 200, media: mediaJSON, valid: true})
	})
	t.Run("whoami: token used before", func(t *testing.T) {
		// lastUsedAt is the use before this one: wait for the first use to be written.
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := c.do(t, s.URL, contractCase{name: "whoami", op: opWhoami, path: "/v1/whoami", bearer: secret, status: 200, media: mediaJSON, valid: true})
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
		r := c.do(t, s.URL, contractCase{name: "audit", op: opAudit, path: "/orgs/org_acme/audit", bearer: admin, status: 200, media: mediaJSON, valid: true})
		if r.body["generatedAt"] == nil || len(r.body["findings"].([]any)) == 0 {
			t.Fatalf("the audit a year on found nothing: %s", r.raw)
		}
	})
	t.Run("delete and revoke", func(t *testing.T) {
		c.do(t, s.URL, contractCase{name: "revoke", op: opRevoke, path: tokensPath + "/" + tokenID, bearer: admin, status: 204, valid: true})
		c.do(t, s.URL, contractCase{name: "delete", op: opDelete, path: acctPath, bearer: admin, status: 204, valid: true})
	})
}

// failures are the exchanges of tg while DynamoDB fails: the authorizer, which reads a
// token's credential, fails closed on every route (API Gateway's 500), and a management
// function called by a user, whose JWT needs no read, answers status.
func (tg opTarget) failures(admin, secret string, status int) []contractCase {
	out := []contractCase{{name: "token", op: tg.op, path: tg.path, bearer: secret, header: tg.header, body: tg.body,
		status: 500, media: mediaJSON, valid: true}}
	if tg.isManagement() {
		out = append(out, contractCase{name: "admin", op: tg.op, path: tg.path, bearer: admin, body: tg.body,
			status: status, media: mediaProblem, valid: true})
	}
	return out
}

// faultStack is a stack for the outcomes a healthy, correctly configured deployment never
// shows: its DynamoDB fails while fault is set, its authorizer's Allow policies cover every
// route (as a stale or wrong policy would), so that the functions' own org and role checks
// answer; and its users come from idp, which can sign a user with no org.
type faultStack struct {
	*local.Stack
	idp *localidp.Issuer
	tap *dynamotest.Tap
}

func startFaultStack(t *testing.T) *faultStack {
	t.Helper()
	fs := &faultStack{}
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
				return wire.AuthorizerHandler(allowEverything(a))
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

// allowEverything widens every Allow policy of a to all routes of the stage. Deny policies
// and refusals stay as they are.
func allowEverything(a wire.AuthorizerHandler) wire.AuthorizerHandler {
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

func (fs *faultStack) user(t *testing.T, org, role, user string) string {
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

// driveFaults drives a faultStack through the outcomes only it can produce: the
// functions' own 403s, 503 and 500 from DynamoDB failures, the authorizer failing closed, and
// a user without an org.
func (c *contract) driveFaults(t *testing.T) {
	fs := startFaultStack(t)
	admin := fs.user(t, "org_acme", "admin", "user_alice")
	member := fs.user(t, "org_acme", "member", "user_bob")
	other := fs.user(t, "org_beta", "admin", "user_carol")
	orgless := fs.user(t, "", "", "user_dave")
	const a = "/orgs/org_acme/service-accounts"

	// A real token, to reach the functions' refusal of service-account tokens.
	saID := c.do(t, fs.URL, contractCase{name: "setup: create", op: opCreate, path: a, bearer: admin,
		body: map[string]string{"name": "claude-code-ops"}, status: 201, media: mediaJSON, valid: true}).body["id"].(string)
	issued := c.do(t, fs.URL, contractCase{name: "setup: generate", op: opGenerate, path: a + "/" + saID + "/tokens", bearer: admin,
		status: 201, media: mediaJSON, valid: true}).body
	secret, tokenID := issued["token"].(string), issued["id"].(string)

	all := func(dynamotest.Call) bool { return true }
	throttled := func() { fs.tap.Reject(all, "ThrottlingException", "Rate exceeded") }
	malformed := func() { fs.tap.Reject(all, "ValidationException", "One or more parameter values were invalid") }
	type phase struct {
		name  string
		fault func()
		run   func(tg opTarget) []contractCase
	}
	phases := []phase{
		{name: "functions refuse what the policy let through", run: func(tg opTarget) []contractCase {
			if !tg.isManagement() {
				return []contractCase{{name: "user without an org", op: tg.op, path: tg.path, bearer: orgless, header: tg.header, body: tg.body, status: 403, media: mediaJSON, valid: true}}
			}
			out := []contractCase{
				{name: "service-account token", op: tg.op, path: tg.path, bearer: secret, body: tg.body, status: 403, media: mediaProblem, valid: true},
				{name: "another org's admin", op: tg.op, path: tg.path, bearer: other, body: tg.body, status: 403, media: mediaProblem, valid: true},
			}
			if !strings.HasPrefix(tg.op, "GET") {
				out = append(out, contractCase{name: "member writing", op: tg.op, path: tg.path, bearer: member, body: tg.body, status: 403, media: mediaProblem, valid: true})
			}
			return out
		}},
		{name: "DynamoDB throttles", fault: throttled, run: func(tg opTarget) []contractCase {
			return tg.failures(admin, secret, 503)
		}},
		{name: "DynamoDB rejects the request", fault: malformed, run: func(tg opTarget) []contractCase {
			return tg.failures(admin, secret, 500)
		}},
	}
	for _, p := range phases {
		t.Run(p.name, func(t *testing.T) {
			if p.fault != nil {
				p.fault()
			}
			defer fs.tap.Fail(nil)
			for _, tg := range everyOperation(saID, tokenID) {
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
	warm, h := signedDelivery(t, fs.Stack, `{"type":"user.created","data":{"id":"user_1"}}`)
	c.do(t, fs.URL, contractCase{name: "webhook: setup", op: opWebhook, path: "/v1/identity/webhooks",
		header: h, body: warm, status: 200, media: mediaJSON, valid: true})
	for _, f := range []struct {
		fault  func()
		status int
	}{{throttled, 503}, {malformed, 500}} {
		body, h := signedOrgDeleted(t, fs.Stack, "org_webhook_fault")
		f.fault()
		c.do(t, fs.URL, contractCase{name: "webhook while DynamoDB fails", op: opWebhook, path: "/v1/identity/webhooks",
			header: h, body: body, status: f.status, media: mediaProblem, valid: true})
		fs.tap.Fail(nil)
	}
}

// signedOrgDeleted is a delivery of organization.deleted for org signed as the identity
// provider signs it for the stack: its body and its Svix headers.
func signedOrgDeleted(t *testing.T, s *local.Stack, org string) (string, map[string]string) {
	t.Helper()
	return signedDelivery(t, s, string(localidp.OrgDeleted(org, time.Now())))
}

// signedDelivery is a delivery of body signed as the identity provider signs it for the stack.
func signedDelivery(t *testing.T, s *local.Stack, body string) (string, map[string]string) {
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

// driveWebhook drives the identity provider's webhook: acted on, repeated, ignored, and
// each refusal.
func (c *contract) driveWebhook(t *testing.T, s *local.Stack) {
	const path = "/v1/identity/webhooks"
	do := func(ex contractCase) response {
		t.Helper()
		ex.op, ex.path = opWebhook, path
		return c.do(t, s.URL, ex)
	}
	body, h := signedOrgDeleted(t, s, "org_webhook")
	if r := do(contractCase{name: "organization.deleted", header: h, body: body, status: 200, media: mediaJSON, valid: true}); r.body["repeated"] != false {
		t.Errorf("first delivery: %s", r.raw)
	}
	if r := do(contractCase{name: "the same delivery again", header: h, body: body, status: 200, media: mediaJSON, valid: true}); r.body["repeated"] != true {
		t.Errorf("repeated delivery: %s", r.raw)
	}
	tampered := strings.Replace(body, "org_webhook", "org_acme", 1)
	do(contractCase{name: "a tampered body", header: h, body: tampered, status: 401, media: mediaProblem, valid: true})
	do(contractCase{name: "no signature", body: body, status: 401, media: mediaProblem, valid: false})
	do(contractCase{name: "over 64 KiB", header: h, body: body + strings.Repeat(" ", 64<<10), status: 413, media: mediaProblem, valid: true})
	// What the provider signs but the system has no use for, or cannot read.
	for _, ex := range []struct {
		name, body string
		status     int
		media      string
	}{
		{"another event type", `{"type":"user.created","data":{"id":"user_1"}}`, 200, mediaJSON},
		{"no org id", `{"type":"organization.deleted","data":{"object":"organization","deleted":true}}`, 400, mediaProblem},
	} {
		body, h := signedDelivery(t, s, ex.body)
		do(contractCase{name: ex.name, header: h, body: body, status: ex.status, media: ex.media, valid: true})
	}
}
