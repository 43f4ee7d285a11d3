package local_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
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
