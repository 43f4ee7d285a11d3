package authorizer_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/authorizer"
)

func TestParseBearer(t *testing.T) {
	for _, tc := range []struct {
		name, header, want string
		ok                 bool
	}{
		{"Plain", "Bearer abc", "abc", true},
		{"Lowercase", "bearer abc", "abc", true},
		{"MixedCase", "bEaReR abc", "abc", true},
		{"Surrounding", " \t Bearer \t abc \t ", "abc", true},
		{"ErrEmpty", "", "", false},
		{"ErrSchemeOnly", "Bearer", "", false},
		{"ErrSchemeAndSpace", "Bearer   ", "", false},
		{"ErrNoSeparator", "Bearerabc", "", false},
		{"ErrOtherScheme", "Basic abc", "", false},
		{"ErrTwoCredentials", "Bearer abc def", "", false},
		{"ErrNewline", "Bearer abc\ndef", "", false},
		{"ErrTokenOnly", "abc", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := authorizer.ParseBearer(tc.header)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("ParseBearer(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseBearer: an accepted header always yields one non-empty credential without white
// space, found at the end of a header that starts with the scheme.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  x", " Bearer\tx ", "Basic x", "Bearer", "", "Bearer a b", "BEARER otsa_x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		cred, ok := authorizer.ParseBearer(header)
		if !ok {
			if cred != "" {
				t.Fatalf("refused header returned credential %q", cred)
			}
			return
		}
		trimmed := strings.TrimSpace(header)
		if cred == "" || strings.ContainsAny(cred, " \t\r\n") || !strings.HasSuffix(trimmed, cred) ||
			!strings.EqualFold(trimmed[:6], "bearer") {
			t.Fatalf("ParseBearer(%q) accepted %q", header, cred)
		}
	})
}

func TestUserConfigFromEnv(t *testing.T) {
	env := map[string]string{
		authorizer.EnvIssuer: "https://clerk.example", authorizer.EnvJWKSURL: "https://clerk.example/jwks",
		authorizer.EnvAdminRoles: "org:admin, org:owner", authorizer.EnvMemberRoles: "",
		authorizer.EnvAuthorizedParties: "https://app.example, https://staging.example", authorizer.EnvClaims: "v1",
	}
	cfg, err := authorizer.UserConfigFromEnv(func(k string) string { return env[k] })
	if err != nil || cfg.Issuer != "https://clerk.example" || len(cfg.AdminRoles) != 2 || cfg.AdminRoles[1] != "org:owner" || cfg.MemberRoles != nil ||
		!slices.Equal(cfg.AuthorizedParties, []string{"https://app.example", "https://staging.example"}) || cfg.Claims != authorizer.ClaimsV1 {
		t.Fatalf("%+v %v", cfg, err)
	}
	env[authorizer.EnvClaims] = "V2"
	if _, err := authorizer.UserConfigFromEnv(func(k string) string { return env[k] }); err == nil {
		t.Fatal("an unknown claim shape must be refused")
	}
	env[authorizer.EnvClaims] = ""
	delete(env, authorizer.EnvJWKSURL)
	if _, err := authorizer.UserConfigFromEnv(func(k string) string { return env[k] }); err == nil {
		t.Fatal("an issuer without a JWKS URL must be refused")
	}
}

// TestFixture: the events/ TOKEN event decodes into the library's type; its placeholder token
// is malformed (bad checksum), so the authorizer refuses it without any I/O.
func TestFixture(t *testing.T) {
	raw, err := os.ReadFile("../../events/authorizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var req events.APIGatewayCustomAuthorizerRequest
	if err := json.Unmarshal(raw, &req); err != nil || req.Type != "TOKEN" {
		t.Fatalf("%+v %v", req, err)
	}
	a := &authorizer.Authorizer{Log: slog.New(slog.NewJSONHandler(io.Discard, nil))} // no service: any I/O would panic
	if _, err := a.Handle(context.Background(), req); err == nil || err.Error() != "Unauthorized" {
		t.Fatalf("err = %v", err)
	}
}
