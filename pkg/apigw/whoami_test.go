package apigw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/apigw"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/token"
)

func TestWhoami(t *testing.T) {
	const saID = "sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W"
	// serviceAccount is the body for the fixture's token, with its expiry and last use.
	serviceAccount := func(expiresAt, lastUsedAt any) map[string]any {
		return map[string]any{
			"principalType": "service_account", "orgId": "org_acme", "serviceAccountId": saID,
			"serviceAccountName": "claude-code-dev-team", "tokenId": "tok_01JD5Z4A1B2C3D4E5F6G7H8J9K",
			"expiresAt": expiresAt, "lastUsedAt": lastUsedAt,
		}
	}
	for _, tc := range []struct {
		name   string
		auth   func(fixture map[string]any) map[string]any // the authorizer context to send
		status int
		want   map[string]any // the whole body, for 200s
	}{
		{
			name:   "ServiceAccount",
			auth:   func(m map[string]any) map[string]any { return m },
			status: 200,
			want:   serviceAccount("2027-02-26T12:00:00Z", "2026-11-28T11:58:30Z"),
		},
		{
			name: "ServiceAccountNeverUsedNeverExpires",
			auth: func(m map[string]any) map[string]any {
				delete(m, apigw.CtxExpiresAt)
				delete(m, apigw.CtxLastUsedAt)
				return m
			},
			status: 200,
			want:   serviceAccount(nil, nil),
		},
		{
			name: "TimesNormalisedToUTC",
			auth: func(m map[string]any) map[string]any {
				m[apigw.CtxExpiresAt] = "2027-02-26T13:00:00+01:00"
				return m
			},
			status: 200,
			want:   serviceAccount("2027-02-26T12:00:00Z", "2026-11-28T11:58:30Z"),
		},
		{
			name:   "UserAdmin",
			auth:   func(map[string]any) map[string]any { return apigw.AuthorizerContext(admin) },
			status: 200,
			want:   map[string]any{"principalType": "user", "orgId": "org_acme", "userId": "user_admin", "role": "admin"},
		},
		{
			name:   "UserMember",
			auth:   func(map[string]any) map[string]any { return apigw.AuthorizerContext(member) },
			status: 200,
			want:   map[string]any{"principalType": "user", "orgId": "org_acme", "userId": "user_member", "role": "member"},
		},
		{name: "MissingContextIs500", auth: func(map[string]any) map[string]any { return nil }, status: 500},
		{
			name: "MalformedTimeIs500",
			auth: func(m map[string]any) map[string]any {
				m[apigw.CtxLastUsedAt] = "yesterday"
				return m
			},
			status: 500,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := apigw.NewWhoami(slog.New(slog.NewJSONHandler(&logs, nil)))
			ev := loadEvent(t, "whoami")
			ev.RequestContext.Authorizer = tc.auth(ev.RequestContext.Authorizer)
			resp := viaLambda(t, h, ev)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tc.status, resp.Body)
			}
			if resp.Headers["Cache-Control"] != "no-store" {
				t.Errorf("Cache-Control = %q", resp.Headers["Cache-Control"])
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
				t.Fatalf("body %q: %v", resp.Body, err)
			}
			if tc.status == 200 {
				if resp.Headers["Content-Type"] != "application/json" || !reflect.DeepEqual(body, tc.want) {
					t.Fatalf("body = %v (%s), want %v", body, resp.Headers["Content-Type"], tc.want)
				}
			} else if resp.Headers["Content-Type"] != "application/problem+json" || body["detail"] != "Internal error." {
				t.Fatalf("problem = %v", body)
			}
			assertOneRequestLine(t, logs.String(), ev, tc.status)
		})
	}
}

// assertOneRequestLine checks the handler logged exactly one line for the request, with its
// status, and nothing of the credential.
func assertOneRequestLine(t *testing.T, logs string, ev events.APIGatewayProxyRequest, status int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", len(lines), logs)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line["msg"] != "request" || line["status"] != float64(status) || line["route"] != apigw.RouteWhoami || line["requestId"] != ev.RequestContext.RequestID {
		t.Errorf("log line = %v", line)
	}
	bearer := strings.TrimPrefix(ev.Headers["Authorization"], "Bearer ")
	if strings.Contains(logs, bearer) || strings.Contains(logs, "otsa_") {
		t.Errorf("the log carries the credential: %s", logs)
	}
}

// TestFixturesCarryNoRealToken keeps a token that would pass the authorizer's format check
// out of the repository, where secret scanners would rightly flag it.
func TestFixturesCarryNoRealToken(t *testing.T) {
	for _, name := range []string{"whoami", "mcp"} {
		t.Run(name, func(t *testing.T) {
			ev := loadEvent(t, name)
			for _, h := range []string{ev.Headers["Authorization"], ev.MultiValueHeaders["Authorization"][0]} {
				secret, ok := strings.CutPrefix(h, "Bearer ")
				if !ok || !strings.HasPrefix(secret, token.Prefix) || token.Parse(secret) == nil {
					t.Fatalf("Authorization %q: want a placeholder that fails token.Parse", h)
				}
			}
		})
	}
}

// TestCallerContextRoundTrip checks that Context and CallerFrom agree on every field,
// including the optional times.
func TestCallerContextRoundTrip(t *testing.T) {
	withTimes := tokenCaller
	withTimes.ExpiresAt, withTimes.LastUsedAt = "2027-02-26T12:00:00Z", "2026-11-28T11:58:30.123Z"
	for _, tc := range []struct {
		name string
		c    sa.Principal
	}{
		{"Admin", admin},
		{"Member", member},
		{"TokenWithoutTimes", tokenCaller},
		{"TokenWithTimes", withTimes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := apigw.PrincipalFrom(events.APIGatewayProxyRequestContext{Authorizer: apigw.AuthorizerContext(tc.c)})
			if err != nil || got != tc.c {
				t.Fatalf("CallerFrom(Context()) = %+v, %v; want %+v", got, err, tc.c)
			}
			ctxCaller, ok := sa.PrincipalFromContext(sa.NewContextWithPrincipal(context.Background(), tc.c))
			if !ok || ctxCaller != tc.c {
				t.Fatalf("CallerFromContext = %+v, %v", ctxCaller, ok)
			}
		})
	}
	if _, ok := sa.PrincipalFromContext(context.Background()); ok {
		t.Fatal("CallerFromContext found a caller in an empty context")
	}
}

func TestCallerFromTimes(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		expiresAt, lastUsedAt any // nil: absent
		wantExp, wantLast     string
		ok                    bool
	}{
		{"Absent", nil, nil, "", "", true},
		{"EmptyIsAbsent", "", "", "", "", true},
		{"UTC", "2027-02-26T12:00:00Z", "2026-11-28T11:58:30Z", "2027-02-26T12:00:00Z", "2026-11-28T11:58:30Z", true},
		{"OffsetToUTC", "2027-02-26T07:00:00-05:00", nil, "2027-02-26T12:00:00Z", "", true},
		{"FractionKept", nil, "2026-11-28T11:58:30.5Z", "", "2026-11-28T11:58:30.5Z", true},
		{"ErrNotRFC3339", "26/Feb/2027", nil, "", "", false},
		{"ErrNotString", nil, float64(1795867200), "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := apigw.AuthorizerContext(tokenCaller)
			if tc.expiresAt != nil {
				m[apigw.CtxExpiresAt] = tc.expiresAt
			}
			if tc.lastUsedAt != nil {
				m[apigw.CtxLastUsedAt] = tc.lastUsedAt
			}
			c, err := apigw.PrincipalFrom(events.APIGatewayProxyRequestContext{Authorizer: m})
			if (err == nil) != tc.ok {
				t.Fatalf("CallerFrom = %+v, %v; want ok=%v", c, err, tc.ok)
			}
			if c.ExpiresAt != tc.wantExp || c.LastUsedAt != tc.wantLast {
				t.Fatalf("times = %q, %q; want %q, %q", c.ExpiresAt, c.LastUsedAt, tc.wantExp, tc.wantLast)
			}
		})
	}
}
