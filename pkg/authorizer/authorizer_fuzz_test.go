package authorizer_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/authorizer"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
)

// fuzzSkew is the clock skew Users.Verify allows on exp and nbf.
const fuzzSkew = 30 * time.Second

// fuzzDataRoutes are the methodArn suffix prefixes every authenticated principal may call,
// written out again rather than read from the package.
var fuzzDataRoutes = []string{"GET/v1/", "POST/v1/", "DELETE/v1/", "GET/mcp/", "POST/mcp/", "DELETE/mcp/"}

// fuzzEnv is the environment FuzzAuthorizer and FuzzJWT share: newEnv's real service on
// minidyn and local issuer, holding one live, one revoked, one expired and one deleted
// token, and user JWTs good and bad. Corpus files name the credentials by placeholder
// ({live}, {admin}, ...), since the real ones are new in every run.
type fuzzEnv struct {
	*env
	tokens
	keys     jwk.Set // the issuer's public keys, as its JWKS publishes them
	expand   *strings.Replacer
	jwts     map[string]bool // the genuine JWTs: Verify and the authorizer must accept them
	creds    map[string]string
	fuzzLogs bytes.Buffer
}

// newFuzzEnv builds the environment once per fuzz target; every iteration reuses it, and
// only the live token's first use writes to the table.
func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	fe := &fuzzEnv{env: newEnv(tb, authorizer.UserConfig{})}
	e := fe.env
	// newEnv's log buffer grows with every call; a fuzz run makes millions.
	e.auth.Log = slog.New(slog.NewJSONHandler(&fe.fuzzLogs, nil))

	fe.tokens = e.issueTokens(tb)
	e.now = e.now.Add(25 * time.Hour) // the one-day token has expired; JWTs are minted from here
	fe.creds = map[string]string{
		"{live}":         fe.live,
		"{revoked}":      fe.revoked,
		"{expired}":      fe.expiring,
		"{deleted}":      fe.deleted,
		"{admin}":        e.jwt(tb, nil),
		"{member}":       e.jwt(tb, map[string]any{"org_role": v1Member}),
		"{jwt_expired}":  e.jwt(tb, map[string]any{"exp": e.now.Add(-time.Minute).Unix()}),
		"{jwt_future}":   e.jwt(tb, map[string]any{"nbf": e.now.Add(time.Hour).Unix()}),
		"{jwt_iss}":      e.jwt(tb, map[string]any{"iss": "https://evil.example"}),
		"{jwt_no_exp}":   e.jwt(tb, map[string]any{"exp": nil}),
		"{jwt_no_org}":   e.jwt(tb, map[string]any{"org_id": nil}),
		"{jwt_wildcard}": e.jwt(tb, map[string]any{"org_id": "*"}),
		"{jwt_other}":    e.jwt(tb, map[string]any{"org_id": "org_b"}),
		"{jwt_forged}":   e.forgedJWT(tb),
	}
	var pairs []string
	for k, v := range fe.creds {
		pairs = append(pairs, k, v)
	}
	fe.expand = strings.NewReplacer(pairs...)
	fe.jwts = map[string]bool{fe.creds["{admin}"]: true, fe.creds["{member}"]: true, fe.creds["{jwt_other}"]: true}

	rec := httptest.NewRecorder()
	e.idp.ServeHTTP(rec, httptest.NewRequest("GET", "/jwks", nil))
	keys, err := jwk.Parse(rec.Body.Bytes())
	if err != nil {
		tb.Fatal(err)
	}
	fe.keys = keys
	// Warm the verifier's key cache, so no iteration fetches the JWKS again (the clock stands
	// still, so an unknown key id never triggers a refetch).
	if _, err := e.auth.Users.Verify(e.ctx, fe.creds["{admin}"]); err != nil {
		tb.Fatal(err)
	}
	return fe
}

// fuzzClaims is what an independent verification of a user JWT found in it.
type fuzzClaims struct {
	sub, org, role string // role is sa.RoleAdmin, sa.RoleMember or "" (no usable role)
}

// verifyJWT verifies raw with jws.Verify against the issuer's public keys, then checks iss,
// exp, nbf and sub itself, by the rules Users.Verify promises (default claim names, no
// audience), and returns the claims. It shares no code with Users.Verify beyond jwx's
// signature check.
func (fe *fuzzEnv) verifyJWT(raw string) (fuzzClaims, bool) {
	payload, err := jws.Verify([]byte(raw), jws.WithKeySet(fe.keys))
	if err != nil {
		return fuzzClaims{}, false
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return fuzzClaims{}, false
	}
	now := fe.now.Truncate(time.Second)
	if iss, _ := claims["iss"].(string); iss != issuerURL {
		return fuzzClaims{}, false
	}
	if exp, ok := fuzzNumericDate(claims["exp"]); !ok || !now.Before(exp.Add(fuzzSkew)) {
		return fuzzClaims{}, false
	}
	if v, present := claims["nbf"]; present {
		if nbf, ok := fuzzNumericDate(v); !ok || now.Before(nbf.Add(-fuzzSkew)) {
			return fuzzClaims{}, false
		}
	}
	sub, ok := claims["sub"].(string)
	if !ok {
		return fuzzClaims{}, false
	}
	c := fuzzClaims{sub: sub}
	org, orgOK := claims["org_id"].(string)
	role, roleOK := claims["org_role"].(string)
	switch {
	case !orgOK || !roleOK:
	case role == v1Admin:
		c.org, c.role = org, sa.RoleAdmin
	case role == v1Member:
		c.org, c.role = org, sa.RoleMember
	}
	return c, true
}

// fuzzNumericDate reads a JWT NumericDate claim decoded with UseNumber.
func fuzzNumericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// fuzzPrincipal is who a genuine credential is, and what the authorizer must answer for it.
type fuzzPrincipal struct {
	id       string         // principalId
	context  map[string]any // the context of an allow; nil checks nothing beyond principalId
	prefixes []string       // methodArn suffixes the principal may call start with one of these
}

func (p fuzzPrincipal) allows(route string) bool {
	for _, pre := range p.prefixes {
		if strings.HasPrefix(route, pre) {
			return true
		}
	}
	return false
}

// principal identifies cred independently of the authorizer: the live token, or a JWT that
// verifies. Anything else is not a genuine credential.
func (fe *fuzzEnv) principal(cred string) (fuzzPrincipal, bool) {
	if cred == fe.live {
		return fuzzPrincipal{
			id: "sa:" + fe.liveTok.ServiceAccountID,
			context: map[string]any{
				apigw.CtxPrincipalType: sa.PrincipalServiceAccount, apigw.CtxOrgID: "org_a",
				apigw.CtxSubject: fe.liveTok.ServiceAccountID, apigw.CtxServiceAccountID: fe.liveTok.ServiceAccountID,
				apigw.CtxTokenID: fe.liveTok.ID,
			},
			prefixes: fuzzDataRoutes,
		}, true
	}
	c, ok := fe.verifyJWT(cred)
	if !ok {
		return fuzzPrincipal{}, false
	}
	p := fuzzPrincipal{id: "user:" + c.sub}
	if c.role == "" || !sa.ValidOrgID(c.org) {
		return p, true // a real user who may call nothing
	}
	p.context = map[string]any{apigw.CtxPrincipalType: sa.PrincipalUser, apigw.CtxOrgID: c.org,
		apigw.CtxSubject: c.sub, apigw.CtxRole: c.role}
	p.prefixes = append([]string{"GET/orgs/" + c.org + "/"}, fuzzDataRoutes...)
	if c.role == sa.RoleAdmin {
		p.prefixes = append(p.prefixes, "POST/orgs/"+c.org+"/", "DELETE/orgs/"+c.org+"/")
	}
	return p, true
}

// FuzzAuthorizer checks the invariant of the whole authorizer, for an arbitrary Authorization
// header and methodArn route (method and path): Handle never panics; it fails only with
// exactly "Unauthorized" (no dependency fails here); it returns a policy only for a genuine
// credential — after ParseBearer, exactly the live token or a JWT that verifies independently
// against the issuer's keys with valid iss, exp and sub — naming that principal; and the
// policy allows precisely the routes that principal may call, with a context naming it.
// Revoked, expired, deleted and forged credentials and mutations of genuine ones are thus
// refused — except spellings of a genuine JWT that still verify, since jwx accepts base64
// padding and ignores the unused low bits of a segment's last character — and a credential
// of 16 or more characters never reaches the logs.
//
// Headers in the corpus (testdata/fuzz/FuzzAuthorizer) name credentials by placeholder,
// such as {live} or {admin}; the seeds below add the real ones.
func FuzzAuthorizer(f *testing.F) {
	fe := newFuzzEnv(f)
	seeds := [][2]string{
		{"Bearer " + fe.live, "GET/v1/whoami"},
		{"bearer " + fe.live, "POST/mcp/v1"},
		{"Bearer " + fe.live, "GET/orgs/org_a/service-accounts"},
		{"Bearer " + fe.creds["{revoked}"], "GET/v1/whoami"},
		{"Bearer " + fe.creds["{expired}"], "GET/v1/whoami"},
		{"Bearer " + fe.creds["{deleted}"], "POST/mcp/v1"},
		{"Bearer " + fe.creds["{admin}"], "POST/orgs/org_a/service-accounts"},
		{"Bearer " + fe.creds["{admin}"], "GET/orgs/org_b/service-accounts"},
		{"BEARER  " + fe.creds["{member}"], "DELETE/orgs/org_a/service-accounts/sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W"},
		{"Bearer " + fe.creds["{jwt_forged}"], "GET/v1/whoami"},
		{"Bearer " + fe.creds["{jwt_wildcard}"], "GET/orgs/*/service-accounts"},
		{"Bearer " + fe.live[:42], "GET/v1/whoami"},
		{"Bearer " + fe.live + " " + fe.live, "GET/v1/whoami"},
		{fe.live, "GET/v1/whoami"},
		{"Basic dXNlcjpwYXNz", "GET/v1/whoami"},
		{"", ""},
		{"Bearer a.b.c", "GET/v1/../orgs/org_a/x"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}

	f.Fuzz(func(t *testing.T, header, route string) {
		header = fe.expand.Replace(header)
		methodArn := stageBase + "/" + route
		fe.fuzzLogs.Reset()
		resp, err := fe.auth.Handle(fe.ctx, events.APIGatewayCustomAuthorizerRequest{
			Type: "TOKEN", AuthorizationToken: header, MethodArn: methodArn,
		})
		cred, parsed := authorizer.ParseBearer(header)
		if len(cred) >= 16 && strings.Contains(fe.fuzzLogs.String(), cred) {
			t.Fatalf("the credential of header %q reached the logs: %s", header, fe.fuzzLogs.String())
		}
		if err != nil {
			if !errors.Is(err, authorizer.ErrUnauthorized) || err.Error() != "Unauthorized" {
				t.Fatalf("Handle(%q, %q) failed with %q; with no failing dependency only Unauthorized is right", header, route, err)
			}
			if resp.PrincipalID != "" || len(resp.PolicyDocument.Statement) != 0 || resp.Context != nil {
				t.Fatalf("Handle(%q, %q) returned Unauthorized with a policy: %+v", header, route, resp)
			}
			if parsed && (cred == fe.live || fe.jwts[cred]) {
				t.Fatalf("Handle(%q, %q) refused a genuine credential", header, route)
			}
			return
		}

		p, ok := fe.principal(cred)
		if !parsed || !ok {
			t.Fatalf("Handle(%q, %q) returned a policy for %q, which is neither the live token nor a JWT that verifies: %+v",
				header, route, cred, resp)
		}
		if resp.PrincipalID != p.id {
			t.Fatalf("Handle(%q, %q) named principal %q, want %q", header, route, resp.PrincipalID, p.id)
		}
		allowed := authorizer.Allows(resp.PolicyDocument, methodArn)
		if allowed != p.allows(route) {
			t.Fatalf("Handle(%q, %q): Allows = %v, want %v for %s; policy %+v", header, route, allowed, !allowed, p.id, resp.PolicyDocument)
		}
		if !allowed {
			return
		}
		for k, v := range p.context {
			if resp.Context[k] != v {
				t.Fatalf("Handle(%q, %q) allowed with context %v, want %s = %q", header, route, resp.Context, k, v)
			}
		}
		if org, _ := resp.Context[apigw.CtxOrgID].(string); !sa.ValidOrgID(org) {
			t.Fatalf("Handle(%q, %q) allowed with org %q in the context", header, route, org)
		}
		if p.context[apigw.CtxPrincipalType] == sa.PrincipalUser && !maps.Equal(resp.Context, p.context) {
			t.Fatalf("Handle(%q, %q) allowed a user with context %v, want %v", header, route, resp.Context, p.context)
		}
	})
}

// TestFuzzAuthorizerCorpus keeps the committed seeds meaningful: files named allow* hold a
// header and route the authorizer allows, files named deny* a genuine credential whose
// policy refuses the route (403), and files named unauthorized* a header it refuses (401).
func TestFuzzAuthorizerCorpus(t *testing.T) {
	fe := newFuzzEnv(t)
	for _, f := range testkit.Corpus(t, "FuzzAuthorizer", 6) {
		var want int
		switch {
		case strings.HasPrefix(f.Name, "allow"):
			want = 200
		case strings.HasPrefix(f.Name, "deny"):
			want = 403
		case strings.HasPrefix(f.Name, "unauthorized"):
			want = 401
		default:
			continue // a file the fuzzer wrote: a regression input, checked by FuzzAuthorizer itself
		}
		t.Run(f.Name, func(t *testing.T) {
			var header, route string
			f.Scan(t, &header, &route)
			methodArn := stageBase + "/" + route
			resp, err := fe.authorize(fe.expand.Replace(header), methodArn)
			if got := outcome(resp, err, methodArn); got != want {
				t.Errorf("header %q, route %q: %d (%v), want %d", header, route, got, err, want)
			}
		})
	}
}
