package apigw_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/dynamo"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/testworld"
)

// fuzzMaxItems bounds the table FuzzHandlers compares before and after each refused request:
// past it, the fixture is seeded again in an empty table.
const fuzzMaxItems = 120

// fuzzRoute is a route FuzzHandlers calls.
type fuzzRoute struct {
	method, resource string
	function         string // the template's function behind the route
	hasSA            bool   // the route has a {saId} path parameter
}

var fuzzRoutes = []fuzzRoute{
	{"POST", apigw.RouteAccounts, "CreateFunction", false},
	{"POST", apigw.RouteTokens, "GenerateFunction", true},
	{"GET", apigw.RouteAccounts, "ListFunction", false},
	{"GET", apigw.RouteAccount, "ListFunction", true},
	{"GET", apigw.RouteTokens, "ListFunction", true},
	{"GET", apigw.RouteAudit, "ListFunction", false},
}

// fuzzFixture is newFixture's world, built once per fuzz target (newFixture needs a
// *testing.T) and seeded again in place when successful writes have grown the table.
type fuzzFixture struct {
	*fixture
	expand *strings.Replacer // placeholders such as {sa} and {cursor} to their values
	// table is a Scan of the table after the last write: the "before" of every request,
	// taken again only when a write has made it stale, since the Scan costs more than most
	// requests.
	table      []map[string]any
	tableAfter int // writes() when table was taken
}

// writes counts the writes that succeeded so far.
func (fx *fuzzFixture) writes() int {
	return fx.w.Tap.Succeeded("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
}

func newFuzzFixture(tb testing.TB) *fuzzFixture {
	tb.Helper()
	fx := &fuzzFixture{fixture: &fixture{w: testworld.New(tb, map[string]string{"MaxActiveTokens": "2"}), ctx: context.Background()}, tableAfter: -1}
	fx.seed(tb)
	return fx
}

// seed creates what newFixture creates — {sa} with a live token {tok} and a revoked one
// {revoked}, {full} at its token cap, {otherSA} of another org with {otherTok} — and
// {cursor}, the cursor of the second page of org's listing.
func (fx *fuzzFixture) seed(tb testing.TB) {
	tb.Helper()
	svc, ctx := fx.w.App(tb).Service, fx.ctx
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	acct, _, err := svc.Create(ctx, org, "user_admin", sa.CreateInput{Name: "claude-code"})
	must(err)
	tok, secret, err := svc.GenerateToken(ctx, org, acct.ID, "user_admin", sa.GenerateInput{})
	must(err)
	revoked, _, err := svc.GenerateToken(ctx, org, acct.ID, "user_admin", sa.GenerateInput{})
	must(err)
	must(svc.RevokeToken(ctx, org, acct.ID, revoked.ID, "user_admin"))
	full, _, err := svc.Create(ctx, org, "user_admin", sa.CreateInput{Name: "github-actions-prod"})
	must(err)
	for range 2 {
		_, _, err = svc.GenerateToken(ctx, org, full.ID, "user_admin", sa.GenerateInput{})
		must(err)
	}
	other, _, err := svc.Create(ctx, "org_other", "user_x", sa.CreateInput{Name: "claude-code-dev-team"})
	must(err)
	otherTok, _, err := svc.GenerateToken(ctx, "org_other", other.ID, "user_x", sa.GenerateInput{})
	must(err)
	page, err := svc.List(ctx, org, sa.ListInput{Limit: 1})
	must(err)
	fx.ids = map[string]string{
		"{sa}": acct.ID, "{tok}": tok.ID, "{revoked}": revoked.ID, "{full}": full.ID,
		"{otherSA}": other.ID, "{otherTok}": otherTok.ID, "{cursor}": page.NextCursor,
		"{unknownSA}": "sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "{unknownTok}": "tok_01JAAAAAAAAAAAAAAAAAAAAAAA",
	}
	fx.token = secret
	var pairs []string
	for k, v := range fx.ids {
		pairs = append(pairs, k, v)
	}
	fx.expand = strings.NewReplacer(pairs...)
}

// reset replaces the table with an empty one and seeds it again.
func (fx *fuzzFixture) reset(t *testing.T) {
	t.Helper()
	if _, err := fx.w.DB.DeleteTable(fx.ctx, &dynamodb.DeleteTableInput{TableName: aws.String(fx.w.Table)}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.w.DB.CreateTable(fx.ctx, dynamo.TableDefinition(fx.w.Table)); err != nil {
		t.Fatal(err)
	}
	fx.seed(t)
}

// fuzzCaller is the caller the authorizer would have established: who picks an admin or a
// member of the path's org (of org when the path's org is not one, since the authorizer only
// ever names a valid org), an admin of another org, or a service-account token.
func fuzzCaller(who uint8, orgID string) sa.Principal {
	if !sa.ValidOrgID(orgID) {
		orgID = org
	}
	switch who % 4 {
	case 0:
		return sa.Principal{Type: sa.PrincipalUser, OrgID: orgID, Subject: "user_admin", Role: sa.RoleAdmin}
	case 1:
		return sa.Principal{Type: sa.PrincipalUser, OrgID: orgID, Subject: "user_member", Role: sa.RoleMember}
	case 2:
		return otherAdmin
	default:
		return tokenCaller
	}
}

// event builds the proxy event API Gateway sends the route; path parameters and query values
// may name the fixture's ids by placeholder.
func (fx *fuzzFixture) event(r fuzzRoute, c sa.Principal, orgID, saID, body string, isBase64 bool, query string) events.APIGatewayProxyRequest {
	ev := events.APIGatewayProxyRequest{
		Resource: r.resource, HTTPMethod: r.method,
		PathParameters: map[string]string{"orgId": fx.expand.Replace(orgID)},
		Body:           body, IsBase64Encoded: isBase64,
		RequestContext: events.APIGatewayProxyRequestContext{RequestID: "fuzz", Authorizer: apigw.AuthorizerContext(c)},
	}
	if r.hasSA {
		ev.PathParameters["saId"] = fx.expand.Replace(saID)
	}
	if isBase64 {
		ev.Body = base64.StdEncoding.EncodeToString([]byte(body))
	}
	q, _ := url.ParseQuery(query) // what parses, as API Gateway passes on what it can
	for k, vs := range q {
		if ev.QueryStringParameters == nil {
			ev.QueryStringParameters = map[string]string{}
		}
		ev.QueryStringParameters[k] = fx.expand.Replace(vs[len(vs)-1])
	}
	return ev
}

// FuzzHandlers checks the management handlers — Create, Generate, and Read on every read
// route — on a service backed by minidyn, for an arbitrary route choice, caller, org and
// account path parameters, body (sent plain or base64) and query string: a handler never
// panics and never returns a Go error; its status is one of 200, 201, 204, 400, 403, 404 and
// 409, never a 5xx; every response is no-store and its body JSON; a read writes nothing; a
// refusal is problem+json and leaves the table exactly as it was (no write succeeds, and a
// Scan after it equals the Scan before); and no response carries the fixture's live token.
// Path parameters and query values may name the fixture's ids by placeholder ({sa}, {full},
// {otherSA}, {cursor}, ...). Seeds live in testdata/fuzz/FuzzHandlers as well as below.
func FuzzHandlers(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, s := range []struct {
		op, who           uint8
		orgID, saID, body string
		isBase64          bool
		query             string
	}{
		{0, 0, org, "", `{"name":"ci-pipeline","description":"CI"}`, false, ""},
		{0, 0, org, "", `{"name":"Claude-Code"}`, false, ""},
		{0, 1, org, "", `{"name":"x"}`, true, ""},
		{1, 0, org, "{sa}", `{"name":"laptop","expiresInDays":30}`, false, ""},
		{1, 0, org, "{full}", "", false, ""},
		{1, 0, org, "{otherSA}", "", false, ""},
		{2, 0, org, "", "", false, "limit=1&cursor={cursor}"},
		{2, 1, org, "", "", false, "limit=0"},
		{2, 0, "org_other", "", "", false, "cursor={cursor}"},
		{3, 1, org, "{sa}", "", false, ""},
		{3, 0, org, "SA#x", "", false, ""},
		{4, 0, org, "{revoked}", "", false, ""},
		{5, 3, org, "", "", false, ""},
		{0, 0, "org*", "", `{"name":"a"}`, false, ""},
		{2, 0, "", "", "", false, "limit=%zz"},
	} {
		f.Add(s.op, s.who, s.orgID, s.saID, s.body, s.isBase64, s.query)
	}

	f.Fuzz(func(t *testing.T, op, who uint8, orgID, saID, body string, isBase64 bool, query string) {
		fx.check(t, op, who, orgID, saID, body, isBase64, query)
	})
}

// check runs one FuzzHandlers input, checks the invariant, and returns the status.
func (fx *fuzzFixture) check(t *testing.T, op, who uint8, orgID, saID, body string, isBase64 bool, query string) int {
	t.Helper()
	if fx.tableAfter != fx.writes() {
		if fx.table = fx.snapshot(t); len(fx.table) > fuzzMaxItems {
			fx.reset(t)
			fx.table = fx.snapshot(t)
		}
		fx.tableAfter = fx.writes()
	}
	r := fuzzRoutes[int(op)%len(fuzzRoutes)]
	ev := fx.event(r, fuzzCaller(who, fx.expand.Replace(orgID)), orgID, saID, body, isBase64, query)
	resp, err := fx.w.Function(r.function).(apigw.Handler)(fx.ctx, ev)
	if err != nil {
		t.Fatalf("%s %s returned a Go error instead of a response: %v", r.method, r.resource, err)
	}
	wrote := fx.writes() != fx.tableAfter
	describe := func() string {
		return fmt.Sprintf("%s %s (caller %v, path %v, query %v, body %q, base64 %v): %d %s", r.method, r.resource,
			ev.RequestContext.Authorizer, ev.PathParameters, ev.QueryStringParameters, ev.Body, ev.IsBase64Encoded, resp.StatusCode, resp.Body)
	}
	switch resp.StatusCode {
	case 200, 201, 204, 400, 403, 404, 409:
	default:
		t.Fatalf("status outside the contract: %s", describe())
	}
	if resp.Headers["Cache-Control"] != "no-store" {
		t.Fatalf("Cache-Control %q: %s", resp.Headers["Cache-Control"], describe())
	}
	if resp.Body != "" && !json.Valid([]byte(resp.Body)) {
		t.Fatalf("body is not JSON: %s", describe())
	}
	if strings.Contains(resp.Body, fx.token) {
		t.Fatalf("a response carries the fixture's live token: %s", describe())
	}
	if r.method == "GET" && wrote {
		t.Fatalf("a read wrote to the table: %s", describe())
	}
	if resp.StatusCode < 400 {
		return resp.StatusCode
	}
	if ct := resp.Headers["Content-Type"]; ct != "application/problem+json" {
		t.Fatalf("Content-Type %q: %s", ct, describe())
	}
	if wrote {
		t.Fatalf("a refused request wrote to the table: %s", describe())
	}
	if after := fx.snapshot(t); !reflect.DeepEqual(fx.table, after) {
		t.Fatalf("a refused request changed the table: %s", describe())
	}
	return resp.StatusCode
}

// TestFuzzHandlersCorpus keeps the committed seeds meaningful: a file whose name starts with a
// status (201_create, 409_generate_cap, ...) gets that status from a fresh fixture.
func TestFuzzHandlersCorpus(t *testing.T) {
	for _, f := range testkit.Corpus(t, "FuzzHandlers", 6) {
		prefix, _, _ := strings.Cut(f.Name, "_")
		want, err := strconv.Atoi(prefix)
		if err != nil {
			continue // a file the fuzzer wrote: a regression input, checked by FuzzHandlers itself
		}
		t.Run(f.Name, func(t *testing.T) {
			var op, who uint8
			var orgID, saID, body, query string
			var isBase64 bool
			f.Scan(t, &op, &who, &orgID, &saID, &body, &isBase64, &query)
			fx := newFuzzFixture(t)
			got := fx.check(t, op, who, orgID, saID, body, isBase64, query)
			if got != want {
				t.Errorf("status %d, want %d", got, want)
			}
		})
	}
}
