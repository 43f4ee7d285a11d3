package authorizer_test

import (
	"maps"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/authorizer"
)

// whoami is the route the JWT tests authorize: any user of an org may call it.
var whoami = arn("GET", "/v1/whoami")

// identity is the org and role the authorizer passes on for a user, or the status API Gateway
// answers with when it passes on none.
func (e *env) identity(t *testing.T, jwt string) (status int, org, role any) {
	t.Helper()
	resp, err := e.authorize("Bearer "+jwt, whoami)
	return outcome(resp, err, whoami), resp.Context["orgId"], resp.Context["role"]
}

// TestClaimShapes: the deployment's parameter says which shape of session token its identity
// provider issues; each shape's org and role are read, the other shape's are not (a user with
// no org may call nothing, so that token gets a deny-all policy).
func TestClaimShapes(t *testing.T) {
	v1 := func(org, role string) map[string]any { return map[string]any{"org_id": org, "org_role": role} }
	v2 := func(org, role string) map[string]any {
		return map[string]any{"org_id": nil, "org_role": nil, "v": 2, "o": map[string]any{"id": org, "rol": role, "slg": "acme"}}
	}
	for _, tc := range []struct {
		name      string
		claims    string
		token     map[string]any
		org, role any // nil: no identity passed on
	}{
		{"V1Admin", authorizer.ClaimsV1, v1("org_a", "org:admin"), "org_a", "admin"},
		{"V1Member", authorizer.ClaimsV1, v1("org_a", "org:member"), "org_a", "member"},
		{"V1RoleWithoutPrefix", authorizer.ClaimsV1, v1("org_a", "admin"), nil, nil},
		{"V1ReadingV2Token", authorizer.ClaimsV1, v2("org_a", "admin"), nil, nil},
		{"V2Admin", authorizer.ClaimsV2, v2("org_a", "admin"), "org_a", "admin"},
		{"V2Member", authorizer.ClaimsV2, v2("org_b", "member"), "org_b", "member"},
		{"V2RoleWithPrefix", authorizer.ClaimsV2, v2("org_a", "org:admin"), nil, nil},
		{"V2ReadingV1Token", authorizer.ClaimsV2, v1("org_a", "org:admin"), nil, nil},
		{"V2OrgNotAnObject", authorizer.ClaimsV2, map[string]any{"o": "org_a"}, nil, nil},
		{"V2OrgIDNotAString", authorizer.ClaimsV2, map[string]any{"o": map[string]any{"id": 7, "rol": "admin"}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, authorizer.UserConfig{Claims: tc.claims})
			status, org, role := e.identity(t, e.jwt(t, tc.token))
			want := 200
			if tc.org == nil {
				want = 403
			}
			if status != want || org != tc.org || role != tc.role {
				t.Fatalf("status %d org %v role %v, want %d %v %v", status, org, role, want, tc.org, tc.role)
			}
		})
	}
}

// TestAudienceAndAuthorizedParties: an audience, when configured, must be in aud; authorized
// parties, when configured, must hold azp (Clerk's session tokens carry azp, the origin of the
// dashboard, and no aud). With both configured, both must hold.
func TestAudienceAndAuthorizedParties(t *testing.T) {
	const dashboard = "https://app.opentrace.ai"
	configs := map[string]authorizer.UserConfig{
		"Audience": {Audience: "opentrace-dashboard"},
		"Azp":      {AuthorizedParties: []string{"https://staging.opentrace.ai", dashboard}},
		"Both":     {Audience: "opentrace-dashboard", AuthorizedParties: []string{dashboard}},
	}
	tokens := map[string]map[string]any{
		"AudMatching":  {"aud": "opentrace-dashboard"},
		"AudInList":    {"aud": []string{"other", "opentrace-dashboard"}},
		"AudWrong":     {"aud": "other-app"},
		"AzpMatching":  {"azp": dashboard},
		"AzpWrong":     {"azp": "https://evil.example"},
		"AzpNotString": {"azp": []string{dashboard}},
		"AudAndAzp":    {"aud": "opentrace-dashboard", "azp": dashboard},
		"Neither":      {},
	}
	accepted := map[string][]string{
		"Audience": {"AudMatching", "AudInList", "AudAndAzp"},
		"Azp":      {"AzpMatching", "AudAndAzp"},
		"Both":     {"AudAndAzp"},
	}
	for cname, cfg := range configs {
		e := newEnv(t, cfg)
		for tname, claims := range tokens {
			t.Run(cname+"/"+tname, func(t *testing.T) {
				want := 401
				for _, ok := range accepted[cname] {
					if ok == tname {
						want = 200
					}
				}
				if status, _, _ := e.identity(t, e.jwt(t, maps.Clone(claims))); status != want {
					t.Fatalf("%d, want %d", status, want)
				}
			})
		}
	}
}

// TestKeyLifetime: the JWKS response's Cache-Control sets how long its keys are trusted,
// within bounds.
func TestKeyLifetime(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"":                                     authorizer.DefaultKeyLifetime,
		"max-age=120":                          2 * time.Minute,
		"public, max-age=600, must-revalidate": 10 * time.Minute,
		"MAX-AGE=\"900\"":                      15 * time.Minute,
		"max-age=5":                            authorizer.MinKeyLifetime,
		"max-age=86400":                        authorizer.MaxKeyLifetime,
		"max-age=99999999999999999999":         authorizer.DefaultKeyLifetime, // unreadable: ignored
		"max-age=-1":                           authorizer.DefaultKeyLifetime,
		"no-store":                             authorizer.MinKeyLifetime,
		"max-age=600, no-cache":                authorizer.MinKeyLifetime,
	} {
		if got := authorizer.KeyLifetime(cc); got != want {
			t.Errorf("KeyLifetime(%q) = %s, want %s", cc, got, want)
		}
	}
}

// TestRemovedKeyExpires: a warm authorizer trusts a key the identity provider has stopped
// publishing only until the key set's lifetime (the provider's Cache-Control) runs out; then
// it fetches the set again and refuses tokens signed with the removed key.
func TestRemovedKeyExpires(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{})
	cc := "public, max-age=120"
	e.jwks.cacheControl.Store(&cc)
	old := e.idp.KeyID()
	signedWithOld := e.jwt(t, map[string]any{"exp": e.now.Add(24 * time.Hour).Unix()})
	if status, _, _ := e.identity(t, signedWithOld); status != 200 {
		t.Fatalf("token with the published key: %d", status)
	}
	if err := e.idp.Rotate(); err != nil {
		t.Fatal(err)
	}
	e.idp.Retire(old)
	e.now = e.now.Add(119 * time.Second)
	if status, _, _ := e.identity(t, signedWithOld); status != 200 || e.jwks.fetches.Load() != 1 {
		t.Fatalf("within the key set's lifetime: %d after %d fetches, want 200 after 1", status, e.jwks.fetches.Load())
	}
	e.now = e.now.Add(2 * time.Second)
	if status, _, _ := e.identity(t, signedWithOld); status != 401 || e.jwks.fetches.Load() != 2 {
		t.Fatalf("after the lifetime: %d after %d fetches, want 401 after 2", status, e.jwks.fetches.Load())
	}
	if status, _, _ := e.identity(t, e.jwt(t, nil)); status != 200 || e.jwks.fetches.Load() != 2 {
		t.Fatalf("token with the new key: %d after %d fetches, want 200 after 2", status, e.jwks.fetches.Load())
	}
}

// TestJWKSOutageBacksOff: while the identity provider is down, the authorizer fails closed
// (500, never 401 or an allow) and asks it for keys at most once per 30 s, whatever arrives:
// tokens with unknown key ids, or any token once the cached keys have expired.
func TestJWKSOutageBacksOff(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{})
	if status, _, _ := e.identity(t, e.jwt(t, nil)); status != 200 {
		t.Fatalf("warm-up: %d", status)
	}
	e.jwks.down.Store(true)
	rotated := func() string { // a token signed with a key the cached set does not hold
		t.Helper()
		if err := e.idp.Rotate(); err != nil {
			t.Fatal(err)
		}
		return e.jwt(t, nil)
	}
	// 20 unknown key ids over 20 s: one fetch, which fails; every answer is 500.
	e.now = e.now.Add(time.Minute)
	for i := range 20 {
		if status, _, _ := e.identity(t, rotated()); status != 500 {
			t.Fatalf("unknown key id %d during the outage: %d, want 500", i, status)
		}
		e.now = e.now.Add(time.Second)
	}
	if n := e.jwks.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches for 20 unknown key ids, want 2 (the warm-up and one)", n)
	}
	// Past the keys' lifetime, every token needs a fetch: still one per 30 s.
	e.now = e.now.Add(authorizer.DefaultKeyLifetime)
	for range 60 {
		if status, _, _ := e.identity(t, e.jwt(t, nil)); status != 500 {
			t.Fatalf("expired keys during the outage: %d, want 500", status)
		}
		e.now = e.now.Add(time.Second)
	}
	if n := e.jwks.fetches.Load(); n != 4 {
		t.Fatalf("%d fetches after 60 s of expired keys, want 4 (two more)", n)
	}
	e.jwks.down.Store(false)
	e.now = e.now.Add(30 * time.Second)
	if status, _, _ := e.identity(t, e.jwt(t, nil)); status != 200 {
		t.Fatalf("after the outage: %d", status)
	}
}
