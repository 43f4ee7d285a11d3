package authorizer_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/authorizer"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// routes is every route of the API, as methodArn suffixes.
var routes = map[string]string{
	"create":      "POST/orgs/org_a/service-accounts",
	"list":        "GET/orgs/org_a/service-accounts",
	"get":         "GET/orgs/org_a/service-accounts/sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W",
	"delete":      "DELETE/orgs/org_a/service-accounts/sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W",
	"generate":    "POST/orgs/org_a/service-accounts/sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W/tokens",
	"listTokens":  "GET/orgs/org_a/service-accounts/sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W/tokens",
	"revoke":      "DELETE/orgs/org_a/service-accounts/sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W/tokens/tok_01JD5Z4A1B2C3D4E5F6G7H8J9K",
	"audit":       "GET/orgs/org_a/audit",
	"otherList":   "GET/orgs/org_b/service-accounts",
	"otherCreate": "POST/orgs/org_b/service-accounts",
	"otherV1":     "GET/orgs/org_b/service-accounts/v1/tokens", // would match a careless */v1/* resource
	"whoami":      "GET/v1/whoami",
	"mcp":         "POST/mcp/v1",
}

func TestAuthorizer(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{})
	ts := e.issueTokens(t)
	tok, valid, revoked, expiring, deleted := ts.liveTok, ts.live, ts.revoked, ts.expiring, ts.deleted
	badChecksum := valid[:42] + string("0123456789"[(strings.IndexByte("0123456789", valid[42])+1+10)%10])
	if valid[42] < '0' || valid[42] > '9' {
		badChecksum = valid[:42] + "0"
	}
	forged := e.forgedJWT(t)

	all := slices.Sorted(maps.Keys(routes))
	data := []string{"whoami", "mcp"}
	allowOnly := func(allowed ...string) map[string]int {
		m := map[string]int{}
		for _, r := range all {
			m[r] = 403
			if slices.Contains(allowed, r) {
				m[r] = 200
			}
		}
		return m
	}
	everywhere := func(status int) map[string]int {
		m := map[string]int{}
		for _, r := range all {
			m[r] = status
		}
		return m
	}
	tokenAccess := allowOnly(data...)
	admin := allowOnly(append([]string{"create", "list", "get", "delete", "generate", "listTokens", "revoke", "audit"}, data...)...)
	member := allowOnly(append([]string{"list", "get", "listTokens", "audit"}, data...)...)

	for _, tc := range []struct {
		name   string
		header func() string
		want   map[string]int
		sub    string // expected principalId on allow
	}{
		{"NoHeader", func() string { return "" }, everywhere(401), ""},
		{"Valid", func() string { return "Bearer " + valid }, tokenAccess, "sa:"},
		{"BearerLowercase", func() string { return "bearer " + valid }, tokenAccess, "sa:"},
		{"BearerUppercase", func() string { return "BEARER " + valid }, tokenAccess, "sa:"},
		{"SurroundingSpaces", func() string { return "  \tBearer   " + valid + " \t " }, tokenAccess, "sa:"},
		{"OtherScheme", func() string { return "Basic " + valid }, everywhere(401), ""},
		{"NoScheme", func() string { return valid }, everywhere(401), ""},
		{"EmptyToken", func() string { return "Bearer " }, everywhere(401), ""},
		{"SchemeOnly", func() string { return "Bearer" }, everywhere(401), ""},
		{"TwoCredentials", func() string { return "Bearer " + valid + " " + valid }, everywhere(401), ""},
		{"WrongPrefix", func() string { return "Bearer otsb_" + valid[5:] }, everywhere(401), ""},
		{"BadChecksum", func() string { return "Bearer " + badChecksum }, everywhere(401), ""},
		{"Unknown", func() string { return "Bearer " + unknownToken(t) }, everywhere(401), ""},
		{"Revoked", func() string { return "Bearer " + revoked }, everywhere(401), ""},
		{"Expired", func() string { e.now = e.now.Add(25 * time.Hour); return "Bearer " + expiring }, everywhere(401), ""},
		{"DeletedAccount", func() string { return "Bearer " + deleted }, everywhere(401), ""},
		{"JWTAdmin", func() string { return "Bearer " + e.jwt(t, nil) }, admin, "user:user_1"},
		{"JWTMember", func() string { return "Bearer " + e.jwt(t, map[string]any{"org_role": v1Member}) }, member, "user:user_1"},
		{"JWTBadSignature", func() string { return "Bearer " + forged }, everywhere(401), ""},
		{"JWTWrongIssuer", func() string { return "Bearer " + e.jwt(t, map[string]any{"iss": "https://evil.example"}) }, everywhere(401), ""},
		{"JWTExpired", func() string { return "Bearer " + e.jwt(t, map[string]any{"exp": e.now.Add(-time.Minute).Unix()}) }, everywhere(401), ""},
		{"JWTNoExpiry", func() string { return "Bearer " + e.jwt(t, map[string]any{"exp": nil}) }, everywhere(401), ""},
		{"JWTNotYetValid", func() string { return "Bearer " + e.jwt(t, map[string]any{"nbf": e.now.Add(time.Hour).Unix()}) }, everywhere(401), ""},
		{"JWTNoSubject", func() string { return "Bearer " + e.jwt(t, map[string]any{"sub": nil}) }, everywhere(401), ""},
		{"JWTMissingOrgClaim", func() string { return "Bearer " + e.jwt(t, map[string]any{"org_id": nil}) }, everywhere(403), "user:user_1"},
		{"JWTUnknownRole", func() string { return "Bearer " + e.jwt(t, map[string]any{"org_role": "org:owner"}) }, everywhere(403), "user:user_1"},
		{"JWTWildcardOrg", func() string { return "Bearer " + e.jwt(t, map[string]any{"org_id": "*"}) }, everywhere(403), "user:user_1"},
		{"JWTGarbage", func() string { return "Bearer a.b.c" }, everywhere(401), ""},
		{"JWTAlgNone", func() string { return "Bearer eyJhbGciOiJub25lIiwia2lkIjoibG9jYWwtMSJ9.eyJzdWIiOiJ4In0." }, everywhere(401), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := tc.header()
			for _, r := range all {
				resp, err := e.authorize(header, arn(strings.SplitN(routes[r], "/", 2)[0], "/"+strings.SplitN(routes[r], "/", 2)[1]))
				if got := outcome(resp, err, stageBase+"/"+routes[r]); got != tc.want[r] {
					t.Errorf("%s: %d, want %d (err %v)", r, got, tc.want[r], err)
				}
				if err == nil && !strings.HasPrefix(resp.PrincipalID, tc.sub) {
					t.Errorf("principalId = %q, want prefix %q", resp.PrincipalID, tc.sub)
				}
			}
		})
	}

	// The context of an allow carries the identity, strings only, with the token's previous
	// use (the one just recorded).
	if _, err := e.authorize("Bearer "+valid, arn("GET", "/v1/whoami")); err != nil {
		t.Fatal(err)
	}
	resp, err := e.authorize("Bearer "+valid, arn("GET", "/v1/whoami"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"principalType": "service_account", "orgId": "org_a", "sub": tok.ServiceAccountID,
		"serviceAccountId": tok.ServiceAccountID, "serviceAccountName": "claude-code", "tokenId": tok.ID,
		"lastUsedAt": e.now.UTC().Format(time.RFC3339)}
	if !maps.Equal(resp.Context, want) {
		t.Fatalf("context = %v\nwant      %v", resp.Context, want)
	}
	resp, err = e.authorize("Bearer "+e.jwt(t, map[string]any{"org_role": v1Member}), arn("GET", "/orgs/org_a/service-accounts"))
	if err != nil || !maps.Equal(resp.Context, map[string]any{"principalType": "user", "orgId": "org_a", "sub": "user_1", "role": "member"}) {
		t.Fatalf("user context = %v (%v)", resp.Context, err)
	}
	assertNoSecrets(t, e.logs.String(), valid, revoked, expiring, deleted, forged)
}

func assertNoSecrets(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	if logs == "" {
		t.Fatal("expected the authorizer to log its decisions")
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) || strings.Contains(logs, s[len(s)-12:]) {
			t.Fatalf("a credential reached the logs")
		}
	}
}

func unknownToken(t *testing.T) string {
	t.Helper()
	other := newEnv(t, authorizer.UserConfig{})
	_, _, s := other.issue(t, "org_z", "elsewhere", sa.GenerateInput{})
	return s
}

func intp(v int) *int { return &v }

// TestUnknownKeyIDRefetchesJWKS: after the provider rotates its key, a token signed with the
// new key is accepted after one refetch; forged key ids refetch at most once per interval.
func TestUnknownKeyIDRefetchesJWKS(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{RefetchInterval: time.Minute})
	route := arn("GET", "/v1/whoami")
	if _, err := e.authorize("Bearer "+e.jwt(t, nil), route); err != nil {
		t.Fatal(err)
	}
	if n := e.jwks.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	if err := e.idp.Rotate(); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(2 * time.Minute)
	if resp, err := e.authorize("Bearer "+e.jwt(t, nil), route); outcome(resp, err, route) != 200 {
		t.Fatalf("token with the rotated key: %v", err)
	}
	if n := e.jwks.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	if err := e.idp.Rotate(); err != nil {
		t.Fatal(err)
	}
	for range 5 { // within the interval: refused without hammering the provider
		if _, err := e.authorize("Bearer "+e.jwt(t, nil), route); err == nil || err.Error() != "Unauthorized" {
			t.Fatalf("err = %v, want Unauthorized", err)
		}
	}
	if n := e.jwks.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want still 2", n)
	}
}

// TestFailsClosed: whatever dependency fails, the answer is an error (500), never an allow,
// and never a 401 that would make a client throw away a good token.
func TestFailsClosed(t *testing.T) {
	route := arn("GET", "/v1/whoami")
	for _, tc := range []struct {
		name   string
		jwt    bool
		inject func(e *env)
	}{
		{"DynamoDBFault", false, func(e *env) { e.db.Tap.FailAll() }},
		{"DynamoDBThrottled", false, func(e *env) { e.db.Tap.Throttle(func(dynamotest.Call) bool { return true }) }},
		{"SecretsManager", false, func(e *env) { e.peppers.fail.Store(true) }},
		{"JWKSColdCache", true, func(e *env) { e.jwks.down.Store(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, authorizer.UserConfig{})
			_, _, secret := e.issue(t, "org_a", "claude-code", sa.GenerateInput{})
			header := "Bearer " + secret
			if tc.jwt {
				header = "Bearer " + e.jwt(t, nil)
			}
			tc.inject(e)
			for range 20 {
				resp, err := e.authorize(header, route)
				if got := outcome(resp, err, route); got != 500 {
					t.Fatalf("outcome %d (%v), want 500", got, err)
				}
				if len(resp.PolicyDocument.Statement) != 0 {
					t.Fatal("a failed authorization returned a policy")
				}
			}
			// The stack's AuthorizerFailureAlarm counts these lines.
			if !strings.Contains(e.logs.String(), `"decision":"error"`) {
				t.Error(`a failure is not logged with "decision":"error"`)
			}
			if n := e.jwks.fetches.Load(); tc.jwt && n != 1 {
				t.Fatalf("%d JWKS fetches for 20 requests, want 1", n)
			}
		})
	}
}

// TestCachedPolicyFitsEveryRoute: the policy returned for one route, if API Gateway caches it,
// allows exactly the principal's other permitted routes and no more.
func TestCachedPolicyFitsEveryRoute(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{})
	_, _, secret := e.issue(t, "org_a", "claude-code", sa.GenerateInput{})
	principals := map[string]string{
		"token":  "Bearer " + secret,
		"admin":  "Bearer " + e.jwt(t, nil),
		"member": "Bearer " + e.jwt(t, map[string]any{"org_role": v1Member}),
	}
	for name, header := range principals {
		t.Run(name, func(t *testing.T) {
			// The fresh decision for every route.
			fresh := map[string]int{}
			for r, suffix := range routes {
				resp, err := e.authorize(header, stageBase+"/"+suffix)
				fresh[r] = outcome(resp, err, stageBase+"/"+suffix)
			}
			// Each route's policy, reused for every other route, decides the same.
			for from, suffix := range routes {
				cached, err := e.authorize(header, stageBase+"/"+suffix)
				if err != nil {
					t.Fatal(err)
				}
				for r, other := range routes {
					if got := outcome(cached, nil, stageBase+"/"+other); got != fresh[r] {
						t.Errorf("policy cached from %s decides %s as %d, fresh decision %d", from, r, got, fresh[r])
					}
				}
			}
		})
	}
}

// TestLastUsedWriteAmplification: 1,000 authorizations of one token inside one interval cause
// at most one lastUsedAt write.
func TestLastUsedWriteAmplification(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{})
	_, _, secret := e.issue(t, "org_a", "claude-code", sa.GenerateInput{})
	before := e.lastUseWrites()
	route := arn("GET", "/v1/whoami")
	for i := range 1000 {
		e.now = e.now.Add(50 * time.Millisecond) // 1,000 requests over 50 s: one interval
		if _, err := e.authorize("Bearer "+secret, route); err != nil {
			t.Fatalf("authorization %d: %v", i, err)
		}
	}
	if writes := e.lastUseWrites() - before; writes != 1 {
		t.Fatalf("%d lastUsedAt writes, want 1", writes)
	}
	e.now = e.now.Add(time.Minute)
	if _, err := e.authorize("Bearer "+secret, route); err != nil {
		t.Fatal(err)
	}
	if writes := e.lastUseWrites() - before; writes != 2 {
		t.Fatalf("after the interval: %d writes, want 2", writes)
	}
}

// TestLastUsedFailureDoesNotFailRequest: a failing last-used write is logged, and the request
// is still allowed, because last use is bookkeeping, not access control.
func TestLastUsedFailureDoesNotFailRequest(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{})
	_, _, secret := e.issue(t, "org_a", "claude-code", sa.GenerateInput{})
	e.auth.UsageTimeout = time.Nanosecond // every write times out
	route := arn("GET", "/v1/whoami")
	resp, err := e.authorize("Bearer "+secret, route)
	if outcome(resp, err, route) != 200 {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(e.logs.String(), "record last use") {
		t.Fatalf("the failed write was not logged: %s", e.logs.String())
	}
}

func TestMalformedMethodArnIsAnError(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{})
	for _, a := range []string{"", "nonsense", "arn:aws:execute-api:us-east-1:1:api", "arn:aws:s3:::bucket/x/y"} {
		if _, err := e.authorize("Bearer x", a); err == nil || err.Error() == "Unauthorized" {
			t.Errorf("%q: err = %v, want a 500", a, err)
		}
	}
}

func TestAllows(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{})
	_ = e
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/b/x/c", true},
		{"a/?/c", "a/b/c", true},
		{"a/?/c", "a/bb/c", false},
		{"a/b", "a/b/c", false},
		{"*", "", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
	} {
		t.Run(fmt.Sprintf("%s~%s", tc.pattern, tc.s), func(t *testing.T) {
			p := policyFor("Allow", tc.pattern)
			if got := authorizer.Allows(p, tc.s); got != tc.want {
				t.Fatalf("got %v", got)
			}
		})
	}
	deny := policyFor("Allow", "a/*")
	deny.Statement = append(deny.Statement, policyFor("Deny", "a/b").Statement...)
	if authorizer.Allows(deny, "a/b") || !authorizer.Allows(deny, "a/c") {
		t.Fatal("an explicit Deny must win over an Allow")
	}
	_ = context.Background()
}
