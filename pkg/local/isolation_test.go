package local_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/local"
)

// The two tenants of the isolation tests. Account names carry the org's name so that a value
// of one org found in a response to the other is unmistakable, and never a coincidence.
const (
	testOrg  = "org_acme"     // the org under test
	otherOrg = "org_umbrella" // another tenant of the same deployment
)

// Principals of the isolation matrix, in the order of the columns of isolationMatrix.
const (
	adminOfOrg      = iota // a dashboard admin of the org
	memberOfOrg            // a dashboard member of the org
	adminOfOtherOrg        // a dashboard admin of the other org
	tokenOfOrg             // a service-account token of the org
	tokenOfOtherOrg        // a service-account token of the other org
	revokedToken           // a token of the org, revoked
	unissuedToken          // a well-formed token with a valid checksum that was never issued
	badChecksum            // a token of the org with one character changed: a typo
	notAToken              // a string that is neither a token nor a JWT
	noHeader               // no Authorization header at all
	numPrincipals
)

// principals says who each principal is, as the matrix sees it.
var principals = [numPrincipals]struct {
	name string
	// org is the org whose identity the data routes must report; "" for a principal the
	// authorizer refuses.
	org string
	// foreign principals may learn nothing of the org: they are outside it, or not an identity.
	foreign bool
}{
	adminOfOrg:      {name: "AdminOfOrg", org: testOrg},
	memberOfOrg:     {name: "MemberOfOrg", org: testOrg},
	adminOfOtherOrg: {name: "AdminOfOtherOrg", org: otherOrg, foreign: true},
	tokenOfOrg:      {name: "TokenOfOrg", org: testOrg},
	tokenOfOtherOrg: {name: "TokenOfOtherOrg", org: otherOrg, foreign: true},
	revokedToken:    {name: "RevokedToken", foreign: true},
	unissuedToken:   {name: "UnknownToken", foreign: true},
	badChecksum:     {name: "BadChecksum", foreign: true},
	notAToken:       {name: "NotAToken", foreign: true},
	noHeader:        {name: "NoHeader", foreign: true},
}

// matrixRoute is one route of the API, its path as template.yaml writes it. A route with {saId} runs against a fresh account (with one token) of the org,
// so that each row starts from the same state whatever the rows before it did.
type matrixRoute struct {
	name, method, path string
}

// isolationMatrix is the contract of DESIGN.md section 5 for every route × principal: 401 for
// anything that is not a valid identity, 403 for a valid identity outside what it may (a token
// on /orgs/…, another org's user, a member writing), and the function's own answer otherwise.
var isolationMatrix = []struct {
	want  [numPrincipals]int
	route matrixRoute
}{
	// Columns: admin, member, the other org's admin, a token, the other org's token, revoked,
	// unknown, bad checksum, not a token, no header.
	//                  Adm  Mem  OAdm Tok  OTok Rev  Unkn Typo NotT None
	{[numPrincipals]int{201, 403, 403, 403, 403, 401, 401, 401, 401, 401}, matrixRoute{"Create", "POST", "/orgs/{orgId}/service-accounts"}},
	{[numPrincipals]int{200, 200, 403, 403, 403, 401, 401, 401, 401, 401}, matrixRoute{"List", "GET", "/orgs/{orgId}/service-accounts"}},
	{[numPrincipals]int{200, 200, 403, 403, 403, 401, 401, 401, 401, 401}, matrixRoute{"Get", "GET", "/orgs/{orgId}/service-accounts/{saId}"}},
	{[numPrincipals]int{204, 403, 403, 403, 403, 401, 401, 401, 401, 401}, matrixRoute{"Delete", "DELETE", "/orgs/{orgId}/service-accounts/{saId}"}},
	{[numPrincipals]int{201, 403, 403, 403, 403, 401, 401, 401, 401, 401}, matrixRoute{"Generate", "POST", "/orgs/{orgId}/service-accounts/{saId}/tokens"}},
	{[numPrincipals]int{200, 200, 403, 403, 403, 401, 401, 401, 401, 401}, matrixRoute{"ListTokens", "GET", "/orgs/{orgId}/service-accounts/{saId}/tokens"}},
	{[numPrincipals]int{204, 403, 403, 403, 403, 401, 401, 401, 401, 401}, matrixRoute{"Revoke", "DELETE", "/orgs/{orgId}/service-accounts/{saId}/tokens/{tokenId}"}},
	{[numPrincipals]int{200, 200, 403, 403, 403, 401, 401, 401, 401, 401}, matrixRoute{"Audit", "GET", "/orgs/{orgId}/audit"}},
	{[numPrincipals]int{200, 200, 200, 200, 200, 401, 401, 401, 401, 401}, matrixRoute{"Whoami", "GET", "/v1/whoami"}},
	{[numPrincipals]int{200, 200, 200, 200, 200, 401, 401, 401, 401, 401}, matrixRoute{"MCP", "POST", "/mcp/v1"}},
	// The stateless MCP server has no stream to open and no session to end: 405 from the function.
	{[numPrincipals]int{405, 405, 405, 405, 405, 401, 401, 401, 401, 401}, matrixRoute{"MCPGet", "GET", "/mcp/v1"}},
	{[numPrincipals]int{405, 405, 405, 405, 405, 401, 401, 401, 401, 401}, matrixRoute{"MCPDelete", "DELETE", "/mcp/v1"}},
	// The identity provider's webhook has no authorizer: only its signature counts, and no
	// credential of ours is one. Each principal tries to delete the org.
	{[numPrincipals]int{401, 401, 401, 401, 401, 401, 401, 401, 401, 401}, matrixRoute{"IdentityWebhook", "POST", "/v1/identity/webhooks"}},
}

// Bodies of the refusals API Gateway sends itself (template.yaml's Gateway Responses). A 403
// with the gateway's body proves the request was refused by the authorizer's policy, before
// any function looked anything up.
const (
	gatewayUnauthorized = `{"message":"Unauthorized"}`
	gatewayForbidden    = `{"message":"Forbidden"}`
	gatewayNotFound     = `{"message":"Not Found"}`
)

// matrixFixture is the org under test, the other org, and a credential for every principal.
type matrixFixture struct {
	s     *local.Stack
	creds [numPrincipals]string // the bearer credential of each principal; "" sends no header
	// orgData is every value that identifies something of the org: account ids and names,
	// token ids, hints and secrets. None may reach a foreign principal.
	orgData []string
	n       int // targets created, for unique names
}

// matrixTarget is an account of the org, with one token, that one matrix row acts on.
type matrixTarget struct {
	saID, tokenID string
}

func newMatrixFixture(t *testing.T) *matrixFixture {
	t.Helper()
	s, _ := startStack(t)
	f := &matrixFixture{s: s}
	f.creds[adminOfOrg] = devToken(t, s, testOrg, "admin", "user_alice")
	f.creds[memberOfOrg] = devToken(t, s, testOrg, "member", "user_bob")
	f.creds[adminOfOtherOrg] = devToken(t, s, otherOrg, "admin", "user_mallory")

	// The org's token principals belong to an account no row acts on, so that a row deleting
	// or revoking its own target never changes who the other rows' principals are.
	holder := f.createAccount(t, "acme-iso-token-holder")
	f.creds[tokenOfOrg], _ = f.generate(t, holder)
	var revokedID string
	f.creds[revokedToken], revokedID = f.generate(t, holder)
	call(t, "DELETE", f.url("/orgs/{orgId}/service-accounts/{saId}/tokens/{tokenId}", matrixTarget{holder, revokedID}),
		f.creds[adminOfOrg], nil).want(t, 204)

	otherAcct := call(t, "POST", s.URL+"/orgs/"+otherOrg+"/service-accounts", f.creds[adminOfOtherOrg],
		map[string]string{"name": "umbrella-iso-pipeline"}).want(t, 201).body["id"].(string)
	f.creds[tokenOfOtherOrg] = call(t, "POST", s.URL+"/orgs/"+otherOrg+"/service-accounts/"+otherAcct+"/tokens",
		f.creds[adminOfOtherOrg], nil).want(t, 201).body["token"].(string)

	f.creds[unissuedToken] = unknownToken(t)
	f.creds[badChecksum] = withTypo(f.creds[tokenOfOrg])
	f.creds[notAToken] = "not-a-token-at-all"
	return f
}

// url resolves a route's path for the org and tg.
func (f *matrixFixture) url(path string, tg matrixTarget) string {
	return f.s.URL + strings.NewReplacer("{orgId}", testOrg, "{saId}", tg.saID, "{tokenId}", tg.tokenID).Replace(path)
}

// createAccount creates an account of the org as its admin and records its id and name as
// the org's data.
func (f *matrixFixture) createAccount(t *testing.T, name string) string {
	t.Helper()
	id := call(t, "POST", f.url("/orgs/{orgId}/service-accounts", matrixTarget{}), f.creds[adminOfOrg],
		map[string]string{"name": name}).want(t, 201).body["id"].(string)
	f.orgData = append(f.orgData, id, name)
	return id
}

// generate issues a token of the org's account saID and records its id, hint and secret as
// the org's data.
func (f *matrixFixture) generate(t *testing.T, saID string) (secret, tokenID string) {
	t.Helper()
	r := call(t, "POST", f.url("/orgs/{orgId}/service-accounts/{saId}/tokens", matrixTarget{saID: saID}),
		f.creds[adminOfOrg], map[string]string{"name": "iso"}).want(t, 201)
	f.record(r, "token", "id", "hint")
	return r.body["token"].(string), r.body["id"].(string)
}

// record adds the named fields of a response body to the org's data. Token names are left
// out on purpose: they are short words ("ci", "laptop") that any response may hold by chance.
func (f *matrixFixture) record(r response, fields ...string) {
	for _, k := range fields {
		if v, _ := r.body[k].(string); v != "" {
			f.orgData = append(f.orgData, v)
		}
	}
}

// target makes the fresh account, with one token, that a row acts on.
func (f *matrixFixture) target(t *testing.T) matrixTarget {
	t.Helper()
	f.n++
	sa := f.createAccount(t, fmt.Sprintf("acme-iso-target-%02d", f.n))
	_, tok := f.generate(t, sa)
	return matrixTarget{saID: sa, tokenID: tok}
}

// state renders what a write could change in the org, as its admin sees it: every account
// with its open-token count, and the tokens of tg's account. Last use is left out, because the
// stream moves it forward on its own.
func (f *matrixFixture) state(t *testing.T, tg matrixTarget) string {
	t.Helper()
	var b strings.Builder
	for _, a := range listAll(t, f.s, testOrg, f.creds[adminOfOrg]) {
		fmt.Fprintf(&b, "%v %v active=%v\n", a["id"], a["name"], a["activeTokens"])
	}
	if tg.saID != "" {
		b.WriteString(tokenState(t, f.s, testOrg, f.creds[adminOfOrg], tg.saID))
	}
	return b.String()
}

// do calls route as principal p against tg.
func (f *matrixFixture) do(t *testing.T, rt matrixRoute, p int, tg matrixTarget) response {
	t.Helper()
	u := f.url(rt.path, tg)
	switch rt.name {
	case "MCP":
		return rpcWhoami(t, u, f.creds[p])
	case "MCPGet", "MCPDelete":
		// What an MCP client sends to open a stream or end a session.
		h := http.Header{"Accept": {"application/json, text/event-stream"}}
		if f.creds[p] != "" {
			h.Set("Authorization", "Bearer "+f.creds[p])
		}
		return exchange(t, rt.method, u, h, "")
	case "Create":
		// A name per principal: a create that wrongly succeeds shows up in the listing.
		return call(t, rt.method, u, f.creds[p], map[string]string{"name": "acme-iso-created-by-" + principals[p].name})
	case "Generate":
		return call(t, rt.method, u, f.creds[p], map[string]string{"name": "iso-generated"})
	case "IdentityWebhook":
		return call(t, rt.method, u, f.creds[p], map[string]any{"type": "organization.deleted", "data": map[string]string{"id": testOrg}})
	}
	return call(t, rt.method, u, f.creds[p], nil)
}

// TestIsolationMatrix calls every route of the API as every principal on the local stack and
// checks the exact status of the contract; that a refused request changed nothing; that
// every refusal comes from the gateway before any function ran; that the data routes report
// the caller's own org; and that no response to a principal outside the org carries anything
// of the org.
func TestIsolationMatrix(t *testing.T) {
	t.Run("CoversEveryRouteOfTheTemplate", func(t *testing.T) {
		// A route added to template.yaml without a row here would escape the matrix.
		inTemplate := map[string]bool{}
		for _, r := range apiRoutes(t) {
			inTemplate[r] = true
		}
		inMatrix := map[string]bool{}
		for _, row := range isolationMatrix {
			inMatrix[row.route.method+" "+row.route.path] = true
		}
		for r := range inTemplate {
			if !inMatrix[r] {
				t.Errorf("template.yaml routes %s, which the isolation matrix lacks", r)
			}
		}
		for r := range inMatrix {
			if !inTemplate[r] {
				t.Errorf("the isolation matrix has %s, which template.yaml does not route", r)
			}
		}
	})

	f := newMatrixFixture(t)

	type foreignResponse struct {
		label string
		text  string
	}
	var foreign []foreignResponse
	checks := 0
	for _, row := range isolationMatrix {
		t.Run(row.route.name, func(t *testing.T) {
			for p, want := range row.want {
				principal := principals[p]
				t.Run(principal.name, func(t *testing.T) {
					checks++
					var tg matrixTarget
					if strings.Contains(row.route.path, "{saId}") {
						tg = f.target(t)
					}
					refused := want >= 300
					var before string
					if refused {
						before = f.state(t, tg)
					}
					r := f.do(t, row.route, p, tg)
					if principal.foreign {
						foreign = append(foreign, foreignResponse{row.route.name + "/" + principal.name, exchangeText(r)})
					}
					if r.status != want {
						hint := ""
						if r.status == 404 && r.raw == gatewayNotFound {
							hint = " (the gateway has no such route: is it in template.yaml?)"
						}
						t.Fatalf("%s %s as %s: status %d, want %d%s: %s", row.route.method, row.route.path, principal.name,
							r.status, want, hint, r.raw)
					}
					switch want {
					case 401:
						if row.route.name == "IdentityWebhook" {
							// The function's own refusal: the gateway checks no credential there.
							if r.header.Get("Content-Type") != "application/problem+json" {
								t.Errorf("401 is %q, want the webhook's problem", r.raw)
							}
							break
						}
						// One refusal for every kind of bad credential, so it tells a prober nothing.
						if r.raw != gatewayUnauthorized || r.header.Get("WWW-Authenticate") != "Bearer" {
							t.Errorf("401 is %q with WWW-Authenticate %q, want the gateway's %s with Bearer", r.raw,
								r.header.Get("WWW-Authenticate"), gatewayUnauthorized)
						}
					case 403:
						if r.raw != gatewayForbidden {
							t.Errorf("403 is %q, want the gateway's %s: the authorizer's policy must refuse it", r.raw, gatewayForbidden)
						}
					case 200:
						checkIdentity(t, row.route.name, r, principal.org)
					}
					switch {
					case refused:
						if after := f.state(t, tg); after != before {
							t.Errorf("a refused %s changed the org:\nbefore:\n%s\nafter:\n%s", row.route.name, before, after)
						}
					case r.header.Get("Cache-Control") != "no-store" && row.route.name != "MCP":
						t.Errorf("Cache-Control = %q, want no-store", r.header.Get("Cache-Control"))
					}
					// What the admin just made is the org's data too.
					switch row.route.name {
					case "Create":
						f.record(r, "id", "name")
					case "Generate":
						f.record(r, "token", "id", "hint")
					}
				})
			}
		})
	}
	t.Logf("isolation matrix: %d routes × %d principals = %d route×principal checks", len(isolationMatrix), numPrincipals, checks)

	t.Run("NoOrgDataToForeignPrincipals", func(t *testing.T) {
		data := slices.Compact(slices.Sorted(slices.Values(f.orgData)))
		for _, fr := range foreign {
			for _, d := range data {
				if strings.Contains(fr.text, d) {
					t.Errorf("the response to %s carries the org's %q:\n%s", fr.label, d, fr.text)
				}
			}
		}
		t.Logf("%d responses to foreign principals scanned for %d values of the org", len(foreign), len(data))
	})
}

// checkIdentity checks that a data route answered with the caller's own org.
func checkIdentity(t *testing.T, route string, r response, org string) {
	t.Helper()
	var got map[string]any
	switch route {
	case "Whoami":
		got = r.body
	case "MCP":
		res, _ := r.body["result"].(map[string]any)
		got, _ = res["structuredContent"].(map[string]any)
	default:
		return
	}
	if got["orgId"] != org {
		t.Errorf("%s reports org %v, want the caller's %s: %s", route, got["orgId"], org, r.raw)
	}
}

// TestIsolationForeignIDs uses the real ids of one org on the other's paths, and guessed ids,
// as each org's admin: they are refused (404 on the caller's own org, 403 on the other) and
// change nothing in either org.
func TestIsolationForeignIDs(t *testing.T) {
	s, _ := startStack(t)
	a := newTenant(t, s, testOrg, "acme-ids-pipeline")
	b := newTenant(t, s, otherOrg, "umbrella-ids-pipeline")
	guessSA, guessTok := "sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "tok_01JAAAAAAAAAAAAAAAAAAAAAAA"

	type probe struct {
		name         string
		caller       *tenant
		method, path string
		want         int
	}
	var probes []probe
	// The same attempts from each side: the caller's own org with the victim's ids (a lookup
	// under the caller's org finds nothing), and the victim's org (refused before any lookup).
	for _, side := range []struct {
		name           string
		caller, victim *tenant
	}{{"AcmeAdmin", a, b}, {"UmbrellaAdmin", b, a}} {
		own, vic := "/orgs/"+side.caller.org+"/service-accounts/", "/orgs/"+side.victim.org+"/service-accounts/"
		v, c := side.victim, side.caller
		probes = append(probes,
			probe{side.name + "/OwnOrg/GetForeignAccount", c, "GET", own + v.saID, 404},
			probe{side.name + "/OwnOrg/ListTokensOfForeignAccount", c, "GET", own + v.saID + "/tokens", 404},
			probe{side.name + "/OwnOrg/GenerateOnForeignAccount", c, "POST", own + v.saID + "/tokens", 404},
			probe{side.name + "/OwnOrg/RevokeForeignToken", c, "DELETE", own + v.saID + "/tokens/" + v.tokenID, 404},
			probe{side.name + "/OwnOrg/RevokeForeignTokenUnderOwnAccount", c, "DELETE", own + c.saID + "/tokens/" + v.tokenID, 404},
			probe{side.name + "/OwnOrg/DeleteForeignAccount", c, "DELETE", own + v.saID, 404},
			probe{side.name + "/OwnOrg/GetGuessedAccount", c, "GET", own + guessSA, 404},
			probe{side.name + "/OwnOrg/RevokeGuessedToken", c, "DELETE", own + c.saID + "/tokens/" + guessTok, 404},
			probe{side.name + "/OwnOrg/DeleteGuessedAccount", c, "DELETE", own + guessSA, 404},
			probe{side.name + "/OwnOrg/GetMalformedID", c, "GET", own + "sa_..", 404},
			probe{side.name + "/ForeignOrg/List", c, "GET", strings.TrimSuffix(vic, "/"), 403},
			probe{side.name + "/ForeignOrg/GetAccount", c, "GET", vic + v.saID, 403},
			probe{side.name + "/ForeignOrg/ListTokens", c, "GET", vic + v.saID + "/tokens", 403},
			probe{side.name + "/ForeignOrg/Generate", c, "POST", vic + v.saID + "/tokens", 403},
			probe{side.name + "/ForeignOrg/RevokeToken", c, "DELETE", vic + v.saID + "/tokens/" + v.tokenID, 403},
			probe{side.name + "/ForeignOrg/DeleteAccount", c, "DELETE", vic + v.saID, 403},
			probe{side.name + "/ForeignOrg/Audit", c, "GET", "/orgs/" + side.victim.org + "/audit", 403},
		)
	}

	beforeA, beforeB := a.state(t), b.state(t)
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			r := call(t, p.method, s.URL+p.path, p.caller.admin, nil)
			if r.status >= 200 && r.status < 300 {
				t.Fatalf("%s %s answered %d: another org's resource was reached: %s", p.method, p.path, r.status, r.raw)
			}
			if r.status != p.want {
				t.Errorf("%s %s: status %d, want %d: %s", p.method, p.path, r.status, p.want, r.raw)
			}
			if p.want == 403 && r.raw != gatewayForbidden {
				t.Errorf("403 is %q, want the gateway's %s: another org must be refused before any lookup", r.raw, gatewayForbidden)
			}
		})
	}
	if after := a.state(t); after != beforeA {
		t.Errorf("%s changed:\nbefore:\n%s\nafter:\n%s", a.org, beforeA, after)
	}
	if after := b.state(t); after != beforeB {
		t.Errorf("%s changed:\nbefore:\n%s\nafter:\n%s", b.org, beforeB, after)
	}
	// The tokens whose ids were used against them still work, for their own org only.
	for _, tn := range []*tenant{a, b} {
		if who := call(t, "GET", s.URL+"/v1/whoami", tn.secret, nil).want(t, 200).body; who["orgId"] != tn.org || who["tokenId"] != tn.tokenID {
			t.Errorf("%s's token now answers %v", tn.org, who)
		}
	}
}

// TestIsolationNoExistenceOracle: whether an id exists in another org, or whether a token was
// ever issued, cannot be told from the answer. Each pair of requests differs only in a real
// versus an invented id or credential, and must get byte-identical answers.
func TestIsolationNoExistenceOracle(t *testing.T) {
	s, _ := startStack(t)
	a := newTenant(t, s, testOrg, "acme-oracle-pipeline")
	b := newTenant(t, s, otherOrg, "umbrella-oracle-pipeline")
	guessSA, guessTok := "sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "tok_01JAAAAAAAAAAAAAAAAAAAAAAA"

	// Credentials the authorizer must not tell apart: revoked, of a deleted account, never
	// issued, mistyped, not a token at all.
	revoked := a.issue(t)
	call(t, "DELETE", s.URL+"/orgs/"+a.org+"/service-accounts/"+a.saID+"/tokens/"+revoked.id, a.admin, nil).want(t, 204)
	doomed := newTenant(t, s, testOrg, "acme-oracle-doomed")
	call(t, "DELETE", s.URL+"/orgs/"+a.org+"/service-accounts/"+doomed.saID, a.admin, nil).want(t, 204)

	type side struct {
		bearer, method, path string
	}
	for _, tc := range []struct {
		name       string
		real, fake side
		want       int
	}{
		{"ForeignOrgExistingVersusGuessedAccount",
			side{b.admin, "GET", "/orgs/" + a.org + "/service-accounts/" + a.saID},
			side{b.admin, "GET", "/orgs/" + a.org + "/service-accounts/" + guessSA}, 403},
		{"ForeignOrgExistingVersusGuessedToken",
			side{b.admin, "DELETE", "/orgs/" + a.org + "/service-accounts/" + a.saID + "/tokens/" + a.tokenID},
			side{b.admin, "DELETE", "/orgs/" + a.org + "/service-accounts/" + guessSA + "/tokens/" + guessTok}, 403},
		{"OwnOrgForeignVersusGuessedAccount",
			side{a.admin, "GET", "/orgs/" + a.org + "/service-accounts/" + b.saID},
			side{a.admin, "GET", "/orgs/" + a.org + "/service-accounts/" + guessSA}, 404},
		{"OwnOrgForeignVersusGuessedTokens",
			side{a.admin, "GET", "/orgs/" + a.org + "/service-accounts/" + b.saID + "/tokens"},
			side{a.admin, "GET", "/orgs/" + a.org + "/service-accounts/" + guessSA + "/tokens"}, 404},
		{"OwnOrgForeignVersusGuessedTokenID",
			side{a.admin, "DELETE", "/orgs/" + a.org + "/service-accounts/" + a.saID + "/tokens/" + b.tokenID},
			side{a.admin, "DELETE", "/orgs/" + a.org + "/service-accounts/" + a.saID + "/tokens/" + guessTok}, 404},
		{"RevokedVersusUnknownToken",
			side{revoked.secret, "GET", "/v1/whoami"}, side{unknownToken(t), "GET", "/v1/whoami"}, 401},
		{"DeletedAccountVersusUnknownToken",
			side{doomed.secret, "GET", "/v1/whoami"}, side{unknownToken(t), "GET", "/v1/whoami"}, 401},
		{"BadChecksumVersusUnknownToken",
			side{withTypo(a.secret), "GET", "/v1/whoami"}, side{unknownToken(t), "GET", "/v1/whoami"}, 401},
		{"NotATokenVersusUnknownToken",
			side{"not-a-token-at-all", "POST", "/mcp/v1"}, side{unknownToken(t), "POST", "/mcp/v1"}, 401},
		{"RevokedTokenOnOrgRouteVersusNoHeader",
			side{revoked.secret, "GET", "/orgs/" + a.org + "/service-accounts"}, side{"", "GET", "/orgs/" + a.org + "/service-accounts"}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real := call(t, tc.real.method, s.URL+tc.real.path, tc.real.bearer, nil)
			fake := call(t, tc.fake.method, s.URL+tc.fake.path, tc.fake.bearer, nil)
			if real.status != tc.want {
				t.Fatalf("real: status %d, want %d: %s", real.status, tc.want, real.raw)
			}
			if got, want := exchangeText(real), exchangeText(fake); got != want {
				t.Errorf("the answers differ, so existence can be probed:\nreal:\n%s\ninvented:\n%s", got, want)
			}
		})
	}
}

// TestIsolationForeignCursor: a listing cursor is bound to the org it was issued for, so one
// org's cursor is refused on another's listing instead of paging through it.
func TestIsolationForeignCursor(t *testing.T) {
	s, _ := startStack(t)
	a := newTenant(t, s, testOrg, "acme-cursor-one")
	b := newTenant(t, s, otherOrg, "umbrella-cursor-one")
	for _, tn := range []*tenant{a, b} {
		call(t, "POST", s.URL+"/orgs/"+tn.org+"/service-accounts", tn.admin, map[string]string{"name": tn.org + "-cursor-two"}).want(t, 201)
	}
	page := call(t, "GET", s.URL+"/orgs/"+b.org+"/service-accounts?limit=1", b.admin, nil).want(t, 200)
	cursor, _ := page.body["nextCursor"].(string)
	if cursor == "" {
		t.Fatalf("no cursor on a first page of two: %s", page.raw)
	}
	for _, tc := range []struct {
		name   string
		caller *tenant
		org    string
		want   int
	}{
		{"IssuingOrg", b, b.org, 200},
		{"OtherOrgsListing", a, a.org, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "GET", s.URL+"/orgs/"+tc.org+"/service-accounts?limit=1&cursor="+url.QueryEscape(cursor), tc.caller.admin, nil).want(t, tc.want)
			if tc.want == 400 && (strings.Contains(r.raw, b.saID) || strings.Contains(r.raw, "umbrella")) {
				t.Errorf("the refusal carries the issuing org's data: %s", r.raw)
			}
		})
	}
}

// tenant is an org with an admin, one account and one token of it, on stack s.
type tenant struct {
	s                     *local.Stack
	org, admin            string
	saID, tokenID, secret string
}

func newTenant(t *testing.T, s *local.Stack, org, name string) *tenant {
	t.Helper()
	tn := &tenant{s: s, org: org, admin: devToken(t, s, org, "admin", "admin_of_"+org)}
	tn.saID = call(t, "POST", s.URL+"/orgs/"+org+"/service-accounts", tn.admin, map[string]string{"name": name}).want(t, 201).body["id"].(string)
	issued := tn.issue(t)
	tn.tokenID, tn.secret = issued.id, issued.secret
	return tn
}

type issuedToken struct{ id, secret string }

// issue generates another token of the tenant's account.
func (tn *tenant) issue(t *testing.T) issuedToken {
	t.Helper()
	r := call(t, "POST", tn.s.URL+"/orgs/"+tn.org+"/service-accounts/"+tn.saID+"/tokens", tn.admin, nil).want(t, 201)
	return issuedToken{id: r.body["id"].(string), secret: r.body["token"].(string)}
}

// state renders the tenant's org as its admin sees it, last use aside.
func (tn *tenant) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, acct := range listAll(t, tn.s, tn.org, tn.admin) {
		fmt.Fprintf(&b, "%v %v active=%v\n", acct["id"], acct["name"], acct["activeTokens"])
		b.WriteString(tokenState(t, tn.s, tn.org, tn.admin, acct["id"].(string)))
	}
	return b.String()
}

// tokenState renders the tokens of one account: id, status and revocation time.
func tokenState(t *testing.T, s *local.Stack, org, admin, saID string) string {
	t.Helper()
	r := call(t, "GET", s.URL+"/orgs/"+org+"/service-accounts/"+saID+"/tokens", admin, nil)
	if r.status == 404 {
		return "  " + saID + " gone\n"
	}
	r.want(t, 200)
	var b strings.Builder
	for _, it := range r.body["items"].([]any) {
		tk := it.(map[string]any)
		fmt.Fprintf(&b, "  %v %v revokedAt=%v\n", tk["id"], tk["status"], tk["revokedAt"])
	}
	return b.String()
}
