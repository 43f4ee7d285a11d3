package local_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/iam"
	"github.com/opentrace/service-accounts/pkg/local"
	"github.com/opentrace/service-accounts/pkg/testworld"
)

// TestLocalEndpointsRefuseWebPages: a web page cannot reach the stack through DNS rebinding
// (a Host that is not a loopback name gets 403), nor mint a credential or run the audit with a
// simple cross-site POST (no JSON content type: 415) or from its own origin (403).
func TestLocalEndpointsRefuseWebPages(t *testing.T) {
	s, _ := startStack(t)
	body := `{"org":"org_web","role":"admin","user":"user_eve"}`
	post := func(host, contentType, origin string) int {
		req, err := http.NewRequest("POST", s.URL+"/local/dev-token", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	port := s.URL[strings.LastIndex(s.URL, ":"):]
	for _, tc := range []struct {
		name                      string
		host, contentType, origin string
		want                      int
	}{
		{"Rebound", "attacker.example" + port, "application/json", "", 403},
		{"FormPost", "", "application/x-www-form-urlencoded", "https://attacker.example", 403},
		{"TextPlainNoOrigin", "", "text/plain", "", 415},
		{"NoContentType", "", "", "", 415},
		{"ForeignOrigin", "", "application/json", "https://attacker.example", 403},
		{"Curl", "", "application/json", "", 200},
		{"Localhost", "localhost" + port, "application/json; charset=utf-8", "", 200},
		{"OwnOrigin", "", "application/json", s.URL, 200},
	} {
		if got := post(tc.host, tc.contentType, tc.origin); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	// The API itself also refuses a rebound Host.
	req, _ := http.NewRequest("GET", s.URL+"/local/health", nil)
	req.Host = "attacker.example" + port
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("a rebound GET: %d, want 403", resp.StatusCode)
	}
}

// TestMalformedQueriesAre400: a query string a client got wrong is refused, never silently
// read as another request: an undecodable cursor (API Gateway passes it through raw) and a
// parameter given twice get 400 naming it, where they used to list the first page.
func TestMalformedQueriesAre400(t *testing.T) {
	s, _ := startStack(t)
	admin := devToken(t, s, "org_query", "admin", "user_alice")
	api := s.URL + "/orgs/org_query/service-accounts"
	for i := range 3 {
		call(t, "POST", api, admin, map[string]string{"name": fmt.Sprintf("query-check-%d", i)}).want(t, 201)
	}
	call(t, "GET", api+"?limit=1", admin, nil).want(t, 200)
	for _, q := range []string{"?cursor=%%%", "?cursor=%zz", "?limit=5&limit=6", "?cursor=a&cursor=b", "?limit=%"} {
		r := call(t, "GET", api+q, admin, nil)
		if r.status != 400 || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want a 400 problem", q, r.status, r.raw)
		}
	}
}

// TestSessionClaimShapes: the local issuer mints the session-token shape the template's
// IdentitySessionClaims names, with the stack's origin as its authorized party, and the
// authorizer reads that shape: an admin of each shape may write in its org.
func TestSessionClaimShapes(t *testing.T) {
	for _, shape := range []string{"v1", "v2"} {
		t.Run(shape, func(t *testing.T) {
			s, _ := startStack(t, func(o *local.Options) { o.Params = map[string]string{"IdentitySessionClaims": shape} })
			admin := devToken(t, s, "org_shape", "admin", "user_alice")
			claims := jwtClaims(t, admin)
			if _, v2 := claims["o"]; v2 != (shape == "v2") || claims["azp"] != s.URL {
				t.Fatalf("claims %v: not the %s shape with azp %s", claims, shape, s.URL)
			}
			call(t, "POST", s.URL+"/orgs/org_shape/service-accounts", admin, map[string]string{"name": "shape-" + shape}).want(t, 201)
			member := devToken(t, s, "org_shape", "member", "user_bob")
			call(t, "GET", s.URL+"/orgs/org_shape/service-accounts", member, nil).want(t, 200)
			call(t, "POST", s.URL+"/orgs/org_shape/service-accounts", member, map[string]string{"name": "x"}).want(t, 403)
		})
	}
}

// jwtClaims reads a JWT's payload without verifying it.
func jwtClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// TestSecretsReadOnlyByTheirFunctions: as their roles in template.yaml are expanded, only the
// functions that hash tokens may read the pepper (the authorizer and generate), and only list
// may read the key that signs its cursors.
func TestSecretsReadOnlyByTheirFunctions(t *testing.T) {
	tpl, functions := testworld.Functions(t)
	arns := map[string]string{}
	for _, id := range []string{"PepperSecret", "CursorSecret"} {
		arns[id] = "arn:aws:secretsmanager:" + local.Region + ":" + local.AccountID + ":secret:" + id + "-AbCdEf"
	}
	resolver := local.Resolver(tpl, nil, "table", "arn:aws:dynamodb:us-east-1:123456789012:table/table/stream/x", arns)
	readers := map[string][]string{}
	for _, id := range slices.Sorted(maps.Keys(functions)) {
		role, err := iam.Build(tpl, functions[id], resolver, local.AccountID)
		if err != nil {
			t.Fatal(err)
		}
		for secret, arn := range arns {
			if role.Evaluate(iam.Request{Action: "secretsmanager:GetSecretValue", Resource: arn}) == iam.Allowed {
				readers[secret] = append(readers[secret], id)
			}
		}
	}
	want := map[string][]string{"PepperSecret": {"AuthorizerFunction", "GenerateFunction"}, "CursorSecret": {"ListFunction"}}
	if !reflect.DeepEqual(readers, want) {
		t.Fatalf("readers of each secret: %v, want %v", readers, want)
	}
}
