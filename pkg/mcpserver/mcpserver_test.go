package mcpserver_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/mcpserver"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
)

// Tokens of the fake authorizer. They only need to be distinct strings: the real format and
// lookup are the authorizer's business, tested in its own package.
const (
	saToken      = "test-token-service-account"
	neverToken   = "test-token-never-used"
	memberToken  = "test-token-member-user"
	unknownToken = "test-token-unknown"
)

var callers = map[string]sa.Principal{
	saToken: {
		Type: sa.PrincipalServiceAccount, OrgID: "org_acme", Subject: "sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W",
		ServiceAccountID: "sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W", ServiceAccountName: "claude-code-dev-team",
		TokenID: "tok_01JD5Z4A1B2C3D4E5F6G7H8J9K", ExpiresAt: "2027-02-26T12:00:00Z", LastUsedAt: "2026-11-28T11:58:30Z",
	},
	neverToken: {
		Type: sa.PrincipalServiceAccount, OrgID: "org_beta", Subject: "sa_02",
		ServiceAccountID: "sa_02", ServiceAccountName: "github-actions-prod", TokenID: "tok_02",
	},
	memberToken: {Type: sa.PrincipalUser, OrgID: "org_acme", Subject: "user_member", Role: sa.RoleMember},
}

// startGateway serves the MCP Lambda handler the way API Gateway does: a TOKEN authorizer
// (here a map of bearer token to caller) answers 401 for unknown tokens, and allowed requests
// become proxy events, whose responses are written back to the client.
func startGateway(t *testing.T, logs io.Writer) *httptest.Server {
	t.Helper()
	lambdaHandler := apigw.HTTPHandler(mcpserver.Handler(slog.New(slog.NewJSONHandler(logs, nil)), "test", mcpserver.Options{AllowedOrigins: []string{"https://app.opentrace.ai"}}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, ok := callers[bearer]
		if !ok || r.URL.Path != apigw.RouteMCP {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"message":"Unauthorized"}`)
			return
		}
		auth := apigw.AuthorizerContext(c)
		auth["principalId"] = c.Subject
		ev, err := apigw.EventFromHTTP(r, apigw.RouteMCP, nil, events.APIGatewayProxyRequestContext{
			AccountID: "123456789012", Stage: "dev", RequestID: "req-" + bearer, Authorizer: auth,
		})
		if err != nil {
			t.Errorf("EventFromHTTP: %v", err)
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		resp, err := lambdaHandler(r.Context(), ev)
		if err != nil {
			t.Errorf("Lambda handler: %v", err)
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		apigw.WriteResponse(w, resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// bearerTransport adds the Authorization header, as an MCP client configured with
// "headers": {"Authorization": "Bearer ${OPENTRACE_API_TOKEN}"} does.
type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// protocolVersions are the versions the tests speak: the SDK's latest (stateless discovery)
// and 2025-06-18 (initialize, then a GET for the optional event stream, which a stateless
// server declines with 405), which MCP clients in the field use.
var protocolVersions = []string{"", "2025-06-18"}

func connect(ctx context.Context, t *testing.T, url, token, protocolVersion string) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "claude-code", Version: "1.0.0"}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   url + apigw.RouteMCP,
		HTTPClient: &http.Client{Transport: bearerTransport{token: token, next: http.DefaultTransport}},
		MaxRetries: -1, // a refusal is final; retrying would only slow the test
	}, &mcp.ClientSessionOptions{ProtocolVersion: protocolVersion})
}

// TestWhoamiThroughAPIGateway drives the server with the official MCP Go SDK client through
// the same path a request takes in AWS: authorizer, proxy event, Lambda handler, response.
func TestWhoamiThroughAPIGateway(t *testing.T) {
	logs := &testkit.Buffer{}
	srv := startGateway(t, logs)
	for _, tc := range []struct {
		name    string
		token   string
		want    string // the structured content, GET /v1/whoami's body
		wantErr string // a connection error must mention this
	}{
		{
			name: "ServiceAccount", token: saToken,
			want: `{"principalType":"service_account","orgId":"org_acme","serviceAccountId":"sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W",
				"serviceAccountName":"claude-code-dev-team","tokenId":"tok_01JD5Z4A1B2C3D4E5F6G7H8J9K",
				"expiresAt":"2027-02-26T12:00:00Z","lastUsedAt":"2026-11-28T11:58:30Z"}`,
		},
		{
			name: "ServiceAccountNeverUsedNeverExpires", token: neverToken,
			want: `{"principalType":"service_account","orgId":"org_beta","serviceAccountId":"sa_02",
				"serviceAccountName":"github-actions-prod","tokenId":"tok_02","expiresAt":null,"lastUsedAt":null}`,
		},
		{
			name: "User", token: memberToken,
			want: `{"principalType":"user","orgId":"org_acme","userId":"user_member","role":"member"}`,
		},
		{name: "UnknownTokenIs401", token: unknownToken, wantErr: "Unauthorized"},
	} {
		for _, pv := range protocolVersions {
			t.Run(tc.name+"/"+cmp.Or(pv, "latest"), func(t *testing.T) {
				whoamiSession(t, srv.URL, tc.token, pv, tc.want, tc.wantErr)
			})
		}
	}
	srv.Close()
	out := logs.String()
	for token := range callers {
		if strings.Contains(out, token) {
			t.Errorf("a token reached the logs:\n%s", out)
		}
	}
	if !strings.Contains(out, `"orgId":"org_acme"`) {
		t.Errorf("no request lines in the logs:\n%s", out)
	}
}

// whoamiSession connects with token, lists the tools and calls whoami, expecting want, or
// expects the connection to fail with an error mentioning wantErr.
func whoamiSession(t *testing.T, url, token, protocolVersion, want, wantErr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	session, err := connect(ctx, t, url, token, protocolVersion)
	if wantErr != "" {
		if err == nil {
			session.Close()
			t.Fatal("connected with an unknown token")
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %q does not mention %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer session.Close()
	initResult := session.InitializeResult()
	if initResult.ServerInfo.Name != mcpserver.ServerName || initResult.ServerInfo.Version != "test" {
		t.Errorf("server info = %+v", initResult.ServerInfo)
	}
	if protocolVersion != "" && initResult.ProtocolVersion != protocolVersion {
		t.Errorf("negotiated %q, want %q", initResult.ProtocolVersion, protocolVersion)
	}

	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	var found *mcp.Tool
	for _, tool := range tools.Tools {
		if tool.Name == mcpserver.ToolWhoami {
			found = tool
		}
	}
	if found == nil || !strings.Contains(found.Description, "MCP setup") || found.OutputSchema == nil {
		t.Fatalf("tools = %+v; want whoami, described for checking an MCP setup, with an output schema", tools.Tools)
	}

	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: mcpserver.ToolWhoami, Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("call whoami: %v %+v", err, res)
	}
	var got, wanted map[string]any
	raw, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal([]byte(want), &wanted); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &got); err != nil || !reflect.DeepEqual(got, wanted) {
		t.Fatalf("structured content = %s, want %s", raw, want)
	}
	// Clients without structured-content support read the same JSON as text.
	if len(res.Content) != 1 {
		t.Fatalf("content = %+v", res.Content)
	}
	text, ok := res.Content[0].(*mcp.TextContent)
	if !ok || !json.Valid([]byte(text.Text)) || !strings.Contains(text.Text, wanted["orgId"].(string)) {
		t.Fatalf("text content = %+v", res.Content[0])
	}
}

// loadEvent reads an events/ fixture: the same files `sam local invoke` uses.
func loadEvent(t *testing.T, name string) events.APIGatewayProxyRequest {
	t.Helper()
	return testkit.LoadEvent(t, filepath.Join("..", "..", "events", name+".json"))
}

// TestInitializeFixture invokes the Lambda handler with events/mcp.json, as
// `sam local invoke` would, and expects the JSON-RPC answer to initialize.
func TestInitializeFixture(t *testing.T) {
	h := apigw.HTTPHandler(mcpserver.Handler(slog.New(slog.NewJSONHandler(io.Discard, nil)), "test", mcpserver.Options{}))
	resp, err := h(context.Background(), loadEvent(t, "mcp"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.IsBase64Encoded || !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
		t.Fatalf("%d %v base64=%v: %s", resp.StatusCode, resp.Headers, resp.IsBase64Encoded, resp.Body)
	}
	var rpc struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int    `json:"id"`
		Result  struct {
			ProtocolVersion string `json:"protocolVersion"`
			ServerInfo      struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"serverInfo"`
			Capabilities map[string]any `json:"capabilities"`
			Instructions string         `json:"instructions"`
		} `json:"result"`
		Error any `json:"error"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &rpc); err != nil {
		t.Fatalf("%v: %s", err, resp.Body)
	}
	r := rpc.Result
	if rpc.JSONRPC != "2.0" || rpc.ID != 1 || rpc.Error != nil || r.ServerInfo.Name != "opentrace" ||
		r.ProtocolVersion != "2025-06-18" || r.Capabilities["tools"] == nil || !strings.Contains(r.Instructions, "whoami") {
		t.Fatalf("initialize result = %s", resp.Body)
	}
}

// TestRefusesWithoutCaller serves Handler without the authorizer in front of it: every
// request must be refused the way the authorizer refuses, before any MCP processing.
func TestRefusesWithoutCaller(t *testing.T) {
	ev := loadEvent(t, "mcp")
	for _, tc := range []struct {
		name   string
		method string
		body   string
	}{
		{"Initialize", http.MethodPost, ev.Body},
		{"ToolsCall", http.MethodPost, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`},
		{"StreamGET", http.MethodGet, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := mcpserver.Handler(slog.New(slog.NewJSONHandler(&logs, nil)), "test", mcpserver.Options{})
			r := httptest.NewRequest(tc.method, "https://api.example.test"+apigw.RouteMCP, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Accept", "application/json, text/event-stream")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized || w.Body.String() != `{"message":"Unauthorized"}` ||
				w.Header().Get("WWW-Authenticate") != "Bearer" || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
			}
			if !strings.Contains(logs.String(), `"level":"ERROR"`) {
				t.Errorf("a request without a caller was not logged as an error: %s", logs.String())
			}
		})
	}
}

// rawPost sends body to the gateway's MCP endpoint with a token and extra headers, as an
// attacker with a valid token (or a web page) could.
func rawPost(t *testing.T, url string, body []byte, headers map[string]string) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url+apigw.RouteMCP, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+saToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

// wantRPCRefusal checks a refusal: the status, and one JSON-RPC error that answers no request.
func wantRPCRefusal(t *testing.T, status, want int, body map[string]any, raw string) {
	t.Helper()
	rpcErr, _ := body["error"].(map[string]any)
	if status != want || body["jsonrpc"] != "2.0" || body["id"] != nil || rpcErr["code"] != float64(-32600) {
		t.Fatalf("status %d %s, want %d with one JSON-RPC error -32600 and id null", status, raw, want)
	}
}

// TestRefusesBatches: a JSON-RPC batch is refused whole, before anything in it runs, whatever
// protocol version the client claims (without one the SDK would execute every call).
func TestRefusesBatches(t *testing.T) {
	srv := startGateway(t, io.Discard)
	var calls []string
	for i := range 500 {
		calls = append(calls, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, i))
	}
	batch := []byte(" \n[" + strings.Join(calls, ",") + "]")
	for _, pv := range []string{"", "2025-03-26", "2025-06-18"} {
		headers := map[string]string{}
		if pv != "" {
			headers["MCP-Protocol-Version"] = pv
		}
		status, body, raw := rawPost(t, srv.URL, batch, headers)
		wantRPCRefusal(t, status, 400, body, raw)
		if strings.Contains(raw, "whoami") || strings.Contains(raw, `"result"`) {
			t.Fatalf("part of the batch ran: %s", raw)
		}
	}
	// One message is served as before.
	status, body, raw := rawPost(t, srv.URL, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`), nil)
	if status != 200 || body["result"] == nil {
		t.Fatalf("a single message: %d %s", status, raw)
	}
}

// TestRefusesLargeBodies: an MCP request over 64 KiB is refused with 413 before the SDK reads it.
func TestRefusesLargeBodies(t *testing.T) {
	srv := startGateway(t, io.Discard)
	pad := strings.Repeat("x", mcpserver.MaxBodyBytes)
	status, body, raw := rawPost(t, srv.URL, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"pad":"`+pad+`"}}}`), nil)
	wantRPCRefusal(t, status, http.StatusRequestEntityTooLarge, body, raw)
	fits := strings.Repeat("x", mcpserver.MaxBodyBytes-200)
	if status, _, raw := rawPost(t, srv.URL, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"pad":"`+fits+`"}}}`), nil); status != 200 {
		t.Fatalf("a request just under the cap: %d %s", status, raw)
	}
}

// TestRefusesForeignOrigins: a request with an Origin that is neither the API's own nor an
// allowed one is refused with 403, as the MCP specification requires against DNS rebinding;
// no Origin, the API's own origin and an allowed one are served.
func TestRefusesForeignOrigins(t *testing.T) {
	srv := startGateway(t, io.Discard)
	msg := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", 200},
		{srv.URL, 200}, // the API's own origin (http: the test gateway has no TLS)
		{"https://app.opentrace.ai", 200},
		{"https://evil.example", 403},
		{"http://app.opentrace.ai", 403},
		{"null", 403},
	} {
		headers := map[string]string{}
		if tc.origin != "" {
			headers["Origin"] = tc.origin
		}
		status, body, raw := rawPost(t, srv.URL, msg, headers)
		if tc.want == 403 {
			wantRPCRefusal(t, status, 403, body, raw)
		} else if status != tc.want {
			t.Errorf("origin %q: %d %s, want %d", tc.origin, status, raw, tc.want)
		}
	}
}
