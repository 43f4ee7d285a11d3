package authorizer_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/authorizer"
	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/localidp"
	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/testworld"
	"github.com/opentrace/service-accounts/pkg/token"
)

const (
	stageBase = "arn:aws:execute-api:us-east-1:123456789012:abc123def4/dev"
	issuerURL = "https://clerk.example.test"
	// The env's JWTs are in Clerk's v1 shape unless a test says otherwise.
	v1Admin  = "org:admin"
	v1Member = "org:member"
)

// arn builds the methodArn API Gateway sends for a method and path.
func arn(method, path string) string { return stageBase + "/" + method + path }

var pepper = token.Pepper{Version: "1", Key: []byte(strings.Repeat("p", 48))}

// failingSource is a pepper source whose Secrets Manager is down.
type failingSource struct{}

func (failingSource) Keyring(context.Context) (secrets.Keyring, error) {
	return secrets.Keyring{}, errors.New("secretsmanager: connection refused")
}

// switchableSource serves the real keyring until told to fail.
type switchableSource struct {
	secrets.Source
	fail atomic.Bool
}

func (s *switchableSource) Keyring(ctx context.Context) (secrets.Keyring, error) {
	if s.fail.Load() {
		return failingSource{}.Keyring(ctx)
	}
	return s.Source.Keyring(ctx)
}

type env struct {
	auth    *authorizer.Authorizer
	svc     *sa.Service      // with full access, to set up what the authorizer reads
	db      *dynamotest.DB   // its Tap counts the calls of both
	client  *dynamodb.Client // the authorizer's: held to its IAM role in template.yaml
	peppers *switchableSource
	idp     *localidp.Issuer
	jwks    *jwksServer
	logs    *testkit.Buffer
	now     time.Time
	ctx     context.Context
}

// jwksServer serves the issuer's JWKS, counting fetches, and can be made to fail or to send
// another Cache-Control.
type jwksServer struct {
	*httptest.Server
	fetches      atomic.Int64
	down         atomic.Bool
	cacheControl atomic.Pointer[string]
}

func newEnv(t testing.TB, users authorizer.UserConfig) *env {
	t.Helper()
	db := dynamotest.Start(t)
	static, err := secrets.NewStatic(secrets.Ring{Current: pepper})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		db: db, client: testworld.FunctionClient(t, "AuthorizerFunction", db), peppers: &switchableSource{Source: static},
		logs: &testkit.Buffer{}, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), ctx: context.Background(),
	}
	e.idp, err = localidp.New(issuerURL)
	if err != nil {
		t.Fatal(err)
	}
	e.jwks = &jwksServer{}
	e.jwks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.jwks.fetches.Add(1)
		if e.jwks.down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		rec := httptest.NewRecorder()
		e.idp.ServeHTTP(rec, r)
		maps.Copy(w.Header(), rec.Header())
		if cc := e.jwks.cacheControl.Load(); cc != nil {
			w.Header().Set("Cache-Control", *cc)
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(e.jwks.Close)
	users.Issuer = issuerURL
	users.JWKSURL = e.jwks.URL
	users.Now = e.clock
	if users.Claims == "" {
		users.Claims = authorizer.ClaimsV1
	}
	e.svc = e.service(t, db.Client, e.clock)
	e.auth = &authorizer.Authorizer{Context: apigw.AuthorizerContext,
		Service: e.service(t, e.client, e.clock), Users: authorizer.NewUsers(users),
		Log: slog.New(slog.NewJSONHandler(e.logs, nil)),
	}
	return e
}

// service is the domain service on client, hashing with the env's peppers.
func (e *env) service(t testing.TB, client dynamo.API, clock func() time.Time) *sa.Service {
	t.Helper()
	store, err := dynamo.New(client, e.db.Table, testworld.CursorKey, dynamo.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	return sa.NewService(store, secrets.Peppers{Source: e.peppers}, sa.WithClock(clock))
}

// lastUseWrites counts the lastUsedAt writes that landed so far.
func (e *env) lastUseWrites() int64 { return int64(e.db.Tap.Succeeded("UpdateItem")) }

func (e *env) clock() time.Time { return e.now }

// issue creates an account in org and returns it with a new token.
func (e *env) issue(t testing.TB, org, name string, in sa.GenerateInput) (sa.ServiceAccount, sa.Token, string) {
	t.Helper()
	acct, _, err := e.svc.Create(e.ctx, org, "user_admin", sa.CreateInput{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	tok, secret, err := e.svc.GenerateToken(e.ctx, org, acct.ID, "user_admin", in)
	if err != nil {
		t.Fatal(err)
	}
	return acct, tok, secret
}

// tokens are a token of org_a of each kind the authorizer must tell apart, by their secrets.
type tokens struct {
	liveTok                          sa.Token // the live token, of account claude-code
	live, revoked, expiring, deleted string   // expiring: a day after the env's now
}

// issueTokens issues one token of each kind.
func (e *env) issueTokens(t testing.TB) tokens {
	t.Helper()
	var ts tokens
	_, ts.liveTok, ts.live = e.issue(t, "org_a", "claude-code", sa.GenerateInput{})
	acct, tok, revoked := e.issue(t, "org_a", "revoked", sa.GenerateInput{})
	if err := e.svc.RevokeToken(e.ctx, "org_a", acct.ID, tok.ID, "user_admin"); err != nil {
		t.Fatal(err)
	}
	ts.revoked = revoked
	_, _, ts.expiring = e.issue(t, "org_a", "expiring", sa.GenerateInput{ExpiresInDays: intp(1)})
	acct, _, ts.deleted = e.issue(t, "org_a", "deleted", sa.GenerateInput{})
	if err := e.svc.Delete(e.ctx, "org_a", acct.ID, "user_admin"); err != nil {
		t.Fatal(err)
	}
	return ts
}

// forgedJWT is an admin's JWT, valid at the env's now, signed with another key under the
// issuer's name and key id.
func (e *env) forgedJWT(t testing.TB) string {
	t.Helper()
	other, err := localidp.New(issuerURL)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Sign(map[string]any{"iss": issuerURL, "sub": "user_1", "exp": e.now.Add(time.Hour).Unix(),
		"org_id": "org_a", "org_role": v1Admin})
	if err != nil {
		t.Fatal(err)
	}
	return forged
}

// credentialKey is the key of the credential item a token's secret is stored under.
func credentialKey(t testing.TB, secret string) map[string]types.AttributeValue {
	t.Helper()
	hasher, err := token.NewHasher(pepper)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "TOKENHASH#" + hasher.Hash(secret)},
		"sk": &types.AttributeValueMemberS{Value: "TOKENHASH"},
	}
}

func (e *env) jwt(t testing.TB, claims map[string]any) string {
	t.Helper()
	base := map[string]any{"iss": issuerURL, "sub": "user_1", "exp": e.now.Add(time.Hour).Unix(),
		"nbf": e.now.Add(-time.Minute).Unix(), "org_id": "org_a", "org_role": v1Admin}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	s, err := e.idp.Sign(base)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// outcome is what API Gateway makes of an authorizer's answer for a route.
func outcome(resp events.APIGatewayCustomAuthorizerResponse, err error, methodArn string) int {
	switch {
	case errors.Is(err, authorizer.ErrUnauthorized) && err.Error() == "Unauthorized":
		return 401
	case err != nil:
		return 500
	case authorizer.Allows(resp.PolicyDocument, methodArn):
		return 200
	default:
		return 403
	}
}

func (e *env) authorize(header, methodArn string) (events.APIGatewayCustomAuthorizerResponse, error) {
	return e.auth.Handle(e.ctx, events.APIGatewayCustomAuthorizerRequest{
		Type: "TOKEN", AuthorizationToken: header, MethodArn: methodArn,
	})
}

func policyFor(effect, resource string) events.APIGatewayCustomAuthorizerPolicy {
	return events.APIGatewayCustomAuthorizerPolicy{Version: "2012-10-17", Statement: []events.IAMPolicyStatement{
		{Action: []string{"execute-api:Invoke"}, Effect: effect, Resource: []string{resource}},
	}}
}
