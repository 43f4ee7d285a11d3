package apigw_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/apigw"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// seen is what the http.Handler behind HTTPHandler received.
type seen struct {
	method, path, host string
	query              url.Values
	header             http.Header
	body               []byte
	caller             sa.Principal
	hasCaller          bool
}

// reply is what the http.Handler behind HTTPHandler answers.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// recordingHandler records each request into *got and answers with r.
func recordingHandler(t *testing.T, got *seen, calls *int, r reply) http.Handler {
	t.Helper()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		*calls++
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		c, ok := sa.PrincipalFromContext(req.Context())
		*got = seen{method: req.Method, path: req.URL.Path, host: req.Host, query: req.URL.Query(),
			header: req.Header.Clone(), body: body, caller: c, hasCaller: ok}
		for k, vs := range r.header {
			w.Header()[k] = vs
		}
		if r.status != 0 {
			w.WriteHeader(r.status)
		}
		_, _ = w.Write(r.body)
	})
}

// viaLambda passes ev and the handler's response through JSON, as the Lambda runtime does, so
// that anything lost on the wire (nil maps, invalid UTF-8) is lost here too.
func viaLambda(t *testing.T, h apigw.Handler, ev events.APIGatewayProxyRequest) events.APIGatewayProxyResponse {
	t.Helper()
	var in events.APIGatewayProxyRequest
	roundTripJSON(t, ev, &in)
	resp, err := h(context.Background(), in)
	if err != nil {
		t.Fatalf("handler returned an error instead of a response: %v", err)
	}
	var out events.APIGatewayProxyResponse
	roundTripJSON(t, resp, &out)
	return out
}

func roundTripJSON(t *testing.T, in, out any) {
	t.Helper()
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

// gatewayContext is a request context as API Gateway passes it after the authorizer allowed c.
func gatewayContext(c sa.Principal) events.APIGatewayProxyRequestContext {
	auth := apigw.AuthorizerContext(c)
	auth["principalId"] = "sa:" + c.Subject
	return events.APIGatewayProxyRequestContext{AccountID: "123456789012", Stage: "dev", RequestID: "req-1", Authorizer: auth}
}

var binary = []byte{0x00, 0xff, 0xfe, 0x80, 'o', 'k', 0xc3, 0x28}

// TestHTTPRoundTrip sends requests through the whole path a call takes: net/http request →
// EventFromHTTP → (JSON) → HTTPHandler → http.Handler → (JSON) → WriteResponse.
func TestHTTPRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		req       func() *http.Request
		reply     reply
		check     func(t *testing.T, got seen, ev events.APIGatewayProxyRequest)
		wantBody  []byte
		wantInB64 bool // the event's body is base64
		wantOut64 bool // the proxy response's body is base64
	}{
		{
			name: "GetWithMultiValueQuery",
			req: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "https://api.example.test/v1/things?b=2&a=1&a=3&q=a+b%26c", nil)
			},
			reply: reply{header: http.Header{"Content-Type": {"application/json"}}, body: []byte(`{"ok":true}`)},
			check: func(t *testing.T, got seen, ev events.APIGatewayProxyRequest) {
				want := url.Values{"a": {"1", "3"}, "b": {"2"}, "q": {"a b&c"}}
				if got.method != http.MethodGet || got.path != "/v1/things" || !reflect.DeepEqual(got.query, want) {
					t.Errorf("handler saw %s %s %v", got.method, got.path, got.query)
				}
				if ev.QueryStringParameters["a"] != "3" || !slices.Equal(ev.MultiValueQueryStringParameters["a"], []string{"1", "3"}) {
					t.Errorf("event query %v / %v; want the last value single, all values multi", ev.QueryStringParameters, ev.MultiValueQueryStringParameters)
				}
			},
			wantBody: []byte(`{"ok":true}`),
		},
		{
			name: "MultiValueHeadersAndHost",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "https://api.example.test:8443/mcp/v1", nil)
				r.Header.Add("X-Multi", "one")
				r.Header.Add("X-Multi", "two")
				r.Header.Set("Authorization", "Bearer not-a-token")
				return r
			},
			reply: reply{
				status: http.StatusAccepted,
				header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Set-Cookie": {"a=1", "b=2"}, "Vary": {"Accept"}},
				body:   []byte("accepted"),
			},
			check: func(t *testing.T, got seen, ev events.APIGatewayProxyRequest) {
				if !slices.Equal(got.header.Values("X-Multi"), []string{"one", "two"}) || got.header.Get("Authorization") != "Bearer not-a-token" {
					t.Errorf("handler saw headers %v", got.header)
				}
				if got.host != "api.example.test:8443" || got.header.Get("Host") != "" {
					t.Errorf("host %q, Host header %q; want r.Host only, as net/http does", got.host, got.header.Get("Host"))
				}
				if ev.Headers["X-Multi"] != "two" || ev.Headers["X-Forwarded-Proto"] != "https" || ev.Headers["X-Forwarded-Port"] != "8443" {
					t.Errorf("event headers %v", ev.Headers)
				}
			},
			wantBody: []byte("accepted"),
		},
		{
			name: "BinaryBodyBothWays",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodPut, "https://api.example.test/blob", bytes.NewReader(binary))
				r.Header.Set("Content-Type", "application/octet-stream")
				return r
			},
			reply: reply{header: http.Header{"Content-Type": {"application/octet-stream"}}, body: binary},
			check: func(t *testing.T, got seen, _ events.APIGatewayProxyRequest) {
				assertBytes(t, "handler body", got.body, binary)
			},
			wantBody:  binary,
			wantInB64: true,
			wantOut64: true,
		},
		{
			name: "UTF8TextThatIsNotJSON",
			req: func() *http.Request {
				return httptest.NewRequest(http.MethodPost, "https://api.example.test/echo", strings.NewReader("héllo ✓"))
			},
			reply: reply{body: []byte("<html><body>héllo ✓</body></html>")}, // no Content-Type: sniffed, as net/http does
			check: func(t *testing.T, got seen, _ events.APIGatewayProxyRequest) {
				assertBytes(t, "handler body", got.body, []byte("héllo ✓"))
			},
			wantBody: []byte("<html><body>héllo ✓</body></html>"),
		},
		{
			name: "PNGIsBase64EvenWhenItLooksLikeText",
			req: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "https://api.example.test/logo", nil)
			},
			reply:     reply{header: http.Header{"Content-Type": {"image/png"}}, body: []byte("plain ascii")},
			check:     func(*testing.T, seen, events.APIGatewayProxyRequest) {},
			wantBody:  []byte("plain ascii"),
			wantOut64: true,
		},
		{
			name: "NoContent",
			req: func() *http.Request {
				return httptest.NewRequest(http.MethodDelete, "https://api.example.test/thing", nil)
			},
			reply:    reply{status: http.StatusNoContent},
			check:    func(*testing.T, seen, events.APIGatewayProxyRequest) {},
			wantBody: []byte{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got seen
			calls := 0
			lambdaHandler := apigw.HTTPHandler(recordingHandler(t, &got, &calls, tc.reply))
			r := tc.req()
			r.RemoteAddr = "198.51.100.7:50000"
			ev, err := apigw.EventFromHTTP(r, r.URL.Path, nil, gatewayContext(tokenCaller))
			if err != nil {
				t.Fatal(err)
			}
			if ev.IsBase64Encoded != tc.wantInB64 {
				t.Errorf("event IsBase64Encoded = %v", ev.IsBase64Encoded)
			}
			resp := viaLambda(t, lambdaHandler, ev)
			if calls != 1 {
				t.Fatalf("handler called %d times", calls)
			}
			if !got.hasCaller || got.caller != tokenCaller {
				t.Errorf("caller in context = %+v, %v; want %+v", got.caller, got.hasCaller, tokenCaller)
			}
			if resp.IsBase64Encoded != tc.wantOut64 {
				t.Errorf("response IsBase64Encoded = %v (Content-Type %q)", resp.IsBase64Encoded, resp.Headers["Content-Type"])
			}
			tc.check(t, got, ev)

			w := httptest.NewRecorder()
			apigw.WriteResponse(w, resp)
			wantStatus := tc.reply.status
			if wantStatus == 0 {
				wantStatus = http.StatusOK
			}
			if w.Code != wantStatus {
				t.Errorf("status = %d, want %d", w.Code, wantStatus)
			}
			assertBytes(t, "client body", w.Body.Bytes(), tc.wantBody)
			for k, vs := range tc.reply.header {
				if got := w.Result().Header.Values(k); !slices.Equal(got, vs) {
					t.Errorf("client header %s = %q, want %q", k, got, vs)
				}
			}
		})
	}
}

func assertBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// TestHTTPHandlerRefuses covers the requests HTTPHandler answers itself, without calling h.
func TestHTTPHandlerRefuses(t *testing.T) {
	limit := apigw.MaxHTTPBodyBytes
	for _, tc := range []struct {
		name   string
		edit   func(ev *events.APIGatewayProxyRequest)
		status int
		code   string // "" when h must be called
	}{
		{"MissingAuthorizerContextIs500", func(ev *events.APIGatewayProxyRequest) { ev.RequestContext.Authorizer = nil }, 500, sa.EINTERNAL},
		{"IncompleteAuthorizerContextIs500", func(ev *events.APIGatewayProxyRequest) { delete(ev.RequestContext.Authorizer, apigw.CtxTokenID) }, 500, sa.EINTERNAL},
		{"OversizedBodyIs400", func(ev *events.APIGatewayProxyRequest) { ev.Body = strings.Repeat("x", limit+1) }, 400, sa.EINVALID},
		{"OversizedBase64BodyIs400", func(ev *events.APIGatewayProxyRequest) {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(make([]byte, limit+1)), true
		}, 400, sa.EINVALID},
		{"MalformedBase64Is400", func(ev *events.APIGatewayProxyRequest) { ev.Body, ev.IsBase64Encoded = "!!!", true }, 400, sa.EINVALID},
		{"BodyAtTheLimitIsServed", func(ev *events.APIGatewayProxyRequest) { ev.Body = strings.Repeat("x", limit) }, 200, ""},
		{"Base64BodyAtTheLimitIsServed", func(ev *events.APIGatewayProxyRequest) {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(make([]byte, limit)), true
		}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got seen
			calls := 0
			h := apigw.HTTPHandler(recordingHandler(t, &got, &calls, reply{body: []byte("{}")}))
			ev := loadEvent(t, "mcp")
			tc.edit(&ev)
			resp := viaLambda(t, h, ev)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tc.status, resp.Body)
			}
			if tc.code == "" {
				if calls != 1 || len(got.body) != limit {
					t.Fatalf("handler called %d times with %d bytes", calls, len(got.body))
				}
				return
			}
			if calls != 0 {
				t.Fatalf("handler called %d times; want it never called", calls)
			}
			var p apigw.Problem
			if err := json.Unmarshal([]byte(resp.Body), &p); err != nil || resp.Headers["Content-Type"] != "application/problem+json" ||
				p.Type != apigw.ProblemTypeBase+tc.code || p.Status != tc.status {
				t.Fatalf("problem = %s (%v), Content-Type %q", resp.Body, err, resp.Headers["Content-Type"])
			}
			if tc.code == sa.EINVALID && (len(p.Errors) != 1 || p.Errors[0].Field != "body") {
				t.Fatalf("errors = %+v, want one naming body", p.Errors)
			}
			if tc.code == sa.EINTERNAL && p.Detail != "Internal error." {
				t.Fatalf("detail = %q", p.Detail)
			}
		})
	}
}

// TestEventFromHTTPMatchesFixtures rebuilds each events/ fixture from the HTTP request it
// describes and expects exactly the fixture: the shape API Gateway sends, nothing more.
func TestEventFromHTTPMatchesFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			want := loadEvent(t, name)
			if want.HTTPMethod == "" {
				t.Skip("not a proxy event") // e.g. the authorizer's
			}
			r := requestFor(t, want)
			got, err := apigw.EventFromHTTP(r, want.Resource, want.PathParameters, want.RequestContext)
			if err != nil {
				t.Fatal(err)
			}
			// Compare as JSON, the form API Gateway and the functions exchange.
			var g, w map[string]any
			roundTripJSON(t, got, &g)
			roundTripJSON(t, want, &w)
			if !reflect.DeepEqual(g, w) {
				gj, _ := json.MarshalIndent(g, "", "  ")
				t.Fatalf("EventFromHTTP =\n%s\nwant the fixture", gj)
			}
		})
	}
}

// requestFor is the request a client sent for API Gateway to produce ev (over HTTPS, from the
// fixture's source IP, without the headers API Gateway adds).
func requestFor(t *testing.T, ev events.APIGatewayProxyRequest) *http.Request {
	t.Helper()
	u := url.URL{Scheme: "https", Host: ev.Headers["Host"], Path: ev.Path}
	q := url.Values{}
	for k, vs := range ev.MultiValueQueryStringParameters {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	r := httptest.NewRequest(ev.HTTPMethod, u.String(), strings.NewReader(ev.Body))
	for k, vs := range ev.MultiValueHeaders {
		if k == "Host" || strings.HasPrefix(k, "X-Forwarded-") {
			continue
		}
		r.Header[k] = vs
	}
	r.RemoteAddr = ev.RequestContext.Identity.SourceIP + ":50123"
	return r
}

func TestEventFromHTTP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		req      func() *http.Request
		resource string
		path     map[string]string
		check    func(t *testing.T, ev events.APIGatewayProxyRequest, err error)
	}{
		{
			name: "EmptyMapsAreNil",
			req: func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "http://localhost:3000/v1/whoami", nil)
			},
			check: func(t *testing.T, ev events.APIGatewayProxyRequest, err error) {
				if err != nil || ev.QueryStringParameters != nil || ev.MultiValueQueryStringParameters != nil || ev.PathParameters != nil || ev.Body != "" {
					t.Fatalf("%+v, %v", ev, err)
				}
			},
		},
		{
			name: "RequestContextFilledFromRequest",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodDelete, "http://localhost:3000/orgs/o/service-accounts/s", nil)
				r.Header.Set("User-Agent", "curl/8.7.1")
				r.Header.Set("X-Forwarded-For", "192.0.2.99")
				r.RemoteAddr = "127.0.0.1:40000"
				return r
			},
			resource: apigw.RouteAccount,
			path:     map[string]string{"orgId": "o", "saId": "s"},
			check: func(t *testing.T, ev events.APIGatewayProxyRequest, err error) {
				rc := ev.RequestContext
				if err != nil || rc.HTTPMethod != http.MethodDelete || rc.ResourcePath != apigw.RouteAccount ||
					rc.Path != "/dev/orgs/o/service-accounts/s" || rc.Identity.SourceIP != "127.0.0.1" ||
					rc.Identity.UserAgent != "curl/8.7.1" || rc.Protocol != "HTTP/1.1" || rc.RequestID != "req-1" {
					t.Fatalf("requestContext = %+v, %v", rc, err)
				}
				if ev.PathParameters["saId"] != "s" || ev.Headers["X-Forwarded-For"] != "192.0.2.99, 127.0.0.1" ||
					ev.Headers["X-Forwarded-Proto"] != "http" || ev.Headers["X-Forwarded-Port"] != "3000" {
					t.Fatalf("event = %+v", ev)
				}
			},
		},
		{
			name: "PayloadOverAPIGatewayLimit",
			req: func() *http.Request {
				return httptest.NewRequest(http.MethodPost, "http://localhost/mcp/v1", bytes.NewReader(make([]byte, apigw.MaxPayloadBytes+1)))
			},
			resource: apigw.RouteMCP,
			check: func(t *testing.T, _ events.APIGatewayProxyRequest, err error) {
				if !errors.Is(err, apigw.ErrPayloadTooLarge) {
					t.Fatalf("err = %v", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := apigw.EventFromHTTP(tc.req(), tc.resource, tc.path, gatewayContext(admin))
			tc.check(t, ev, err)
		})
	}
}

func TestWriteResponse(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resp       events.APIGatewayProxyResponse
		status     int
		header     http.Header
		body       string
		wantAbsent []string
	}{
		{
			name: "MergesHeadersWithoutRepeats",
			resp: events.APIGatewayProxyResponse{StatusCode: 200, Body: "{}",
				Headers:           map[string]string{"Content-Type": "application/json", "Set-Cookie": "c=3", "X-Only-Single": "s"},
				MultiValueHeaders: map[string][]string{"Content-Type": {"application/json"}, "Set-Cookie": {"a=1", "b=2"}}},
			status: 200,
			header: http.Header{"Content-Type": {"application/json"}, "Set-Cookie": {"a=1", "b=2", "c=3"}, "X-Only-Single": {"s"}, "Content-Length": {"2"}},
			body:   "{}",
		},
		{
			name:   "DecodesBase64",
			resp:   events.APIGatewayProxyResponse{StatusCode: 201, Body: base64.StdEncoding.EncodeToString(binary), IsBase64Encoded: true},
			status: 201,
			body:   string(binary),
		},
		{
			name:   "IgnoresTheFunctionsContentLength",
			resp:   events.APIGatewayProxyResponse{StatusCode: 200, Body: "abc", Headers: map[string]string{"Content-Length": "99"}},
			status: 200,
			header: http.Header{"Content-Length": {"3"}},
			body:   "abc",
		},
		{
			name:       "NoBodyOn204",
			resp:       events.APIGatewayProxyResponse{StatusCode: 204, Body: "ignored"},
			status:     204,
			wantAbsent: []string{"Content-Length"},
		},
		{
			name:   "BadBase64Is502",
			resp:   events.APIGatewayProxyResponse{StatusCode: 200, Body: "!!!", IsBase64Encoded: true},
			status: 502,
			body:   `{"message": "Internal server error"}`,
		},
		{
			name:   "MissingStatusIs502",
			resp:   events.APIGatewayProxyResponse{Body: "{}"},
			status: 502,
			body:   `{"message": "Internal server error"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			apigw.WriteResponse(w, tc.resp)
			res := w.Result()
			if res.StatusCode != tc.status || w.Body.String() != tc.body {
				t.Fatalf("%d %q, want %d %q", res.StatusCode, w.Body.String(), tc.status, tc.body)
			}
			for k, vs := range tc.header {
				if got := res.Header.Values(k); !reflect.DeepEqual(got, vs) {
					t.Errorf("%s = %q, want %q", k, got, vs)
				}
			}
			for _, k := range tc.wantAbsent {
				if v, ok := res.Header[k]; ok {
					t.Errorf("%s = %q, want none", k, v)
				}
			}
		})
	}
}

// TestHTTPHandlerOverARealServer serves HTTPHandler behind a real listener through the
// emulator-side helpers, as the local stack will.
func TestHTTPHandlerOverARealServer(t *testing.T) {
	var got seen
	calls := 0
	lambdaHandler := apigw.HTTPHandler(recordingHandler(t, &got, &calls, reply{header: http.Header{"Content-Type": {"application/json"}}, body: []byte(`{"pong":1}`)}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := apigw.EventFromHTTP(r, r.URL.Path, nil, gatewayContext(member))
		if err != nil {
			t.Errorf("EventFromHTTP: %v", err)
			return
		}
		resp, err := lambdaHandler(r.Context(), ev)
		if err != nil {
			t.Errorf("handler: %v", err)
			return
		}
		apigw.WriteResponse(w, resp)
	}))
	defer srv.Close()
	res, err := http.Post(srv.URL+"/ping?x=1", "application/json", strings.NewReader(`{"ping":1}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != `{"pong":1}` || calls != 1 || got.caller != member ||
		string(got.body) != `{"ping":1}` || got.query.Get("x") != "1" || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s; handler saw %+v", res.StatusCode, body, got)
	}
}
