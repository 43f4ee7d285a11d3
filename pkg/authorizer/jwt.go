package authorizer

import (
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"

	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/opentrace/service-accounts/pkg/config"
)

// Session-token claim shapes: where a dashboard JWT names the user's org and role. Clerk's
// session tokens came in v1 and now come in v2; the deployment says which it receives.
const (
	// ClaimsV1: top-level org_id and org_role; roles "org:admin" and "org:member".
	ClaimsV1 = "v1"
	// ClaimsV2: the org nested as o.id and o.rol; roles "admin" and "member", without "org:".
	ClaimsV2 = "v2"
)

// UserConfig says how dashboard users' JWTs are verified and read. The defaults suit Clerk.
type UserConfig struct {
	Issuer  string
	JWKSURL string
	// Audience, when set, must be in the token's aud. AuthorizedParties, when set, must hold
	// the token's azp: the origin of the web page the session belongs to, which Clerk's session
	// tokens carry instead of an audience. Each one set is required; prod requires one.
	Audience          string
	AuthorizedParties []string
	Claims            string   // ClaimsV1 or ClaimsV2 (default)
	AdminRoles        []string // default by Claims: ["org:admin"] or ["admin"]
	MemberRoles       []string // default by Claims: ["org:member"] or ["member"]
	// RefetchInterval bounds how often the verifier fetches the JWKS, whatever the reason (a
	// token with an unknown key id, keys past their lifetime, a failed fetch), so that forged
	// key ids or an identity-provider outage cannot turn the authorizer into a load generator
	// against the provider. Default 30 s.
	RefetchInterval time.Duration
	HTTPClient      *http.Client     // default: a client with a 3 s timeout
	Now             func() time.Time // default time.Now
}

// How long fetched keys are trusted: the JWKS response's Cache-Control max-age, within these
// bounds, so that a key the identity provider removed stops working within the hour however
// the provider caches, and a provider saying "no-cache" is not fetched for every token.
const (
	DefaultKeyLifetime = 5 * time.Minute
	MinKeyLifetime     = time.Minute
	MaxKeyLifetime     = time.Hour
	maxJWKSBytes       = 512 << 10
)

// User is a verified dashboard user. OrgID and Role are empty when the token names no org or
// a role the system does not know; such a user may call nothing.
type User struct {
	Subject string
	OrgID   string
	Role    string
}

// errJWKS marks a failure to obtain the identity provider's keys: the authorizer must fail
// closed with an error, not answer Unauthorized as if the token were bad.
var errJWKS = errors.New("jwks unavailable")

// errBadJWT is any reason a presented JWT is not accepted.
var errBadJWT = errors.New("invalid jwt")

// Users verifies dashboard user JWTs against the identity provider's JWKS, cached in process
// for the keys' lifetime and fetched again when a token names a key id the cache does not hold
// (key rotation), never more often than once per RefetchInterval.
type Users struct {
	cfg UserConfig

	mu        sync.Mutex
	keys      jwk.Set
	expires   time.Time // when keys stop being trusted
	attempted time.Time // the last fetch, successful or not
	failed    bool      // whether it failed
}

// NewUsers returns a verifier for cfg, applying defaults.
func NewUsers(cfg UserConfig) *Users {
	if cfg.Claims == "" {
		cfg.Claims = ClaimsV2
	}
	prefix := ""
	if cfg.Claims == ClaimsV1 {
		prefix = "org:"
	}
	if cfg.AdminRoles == nil {
		cfg.AdminRoles = []string{prefix + "admin"}
	}
	if cfg.MemberRoles == nil {
		cfg.MemberRoles = []string{prefix + "member"}
	}
	if cfg.RefetchInterval == 0 {
		cfg.RefetchInterval = 30 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 3 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Users{cfg: cfg}
}

// Verify checks a JWT's signature against the JWKS, its exp, nbf, iss, aud and azp, and reads
// the user's org and role. Errors wrap errBadJWT for a token that is not accepted, and errJWKS
// when the keys could not be fetched.
func (u *Users) Verify(ctx context.Context, raw string) (User, error) {
	msg, err := jws.ParseString(raw)
	if err != nil || len(msg.Signatures()) != 1 {
		return User{}, fmt.Errorf("%w: not a compact JWS", errBadJWT)
	}
	kid, ok := msg.Signatures()[0].ProtectedHeaders().KeyID()
	if !ok || kid == "" {
		return User{}, fmt.Errorf("%w: no key id", errBadJWT)
	}
	keys, err := u.keysFor(ctx, kid)
	if err != nil {
		return User{}, err
	}
	opts := []jwt.ParseOption{
		jwt.WithKeySet(keys),
		jwt.WithValidate(true),
		jwt.WithIssuer(u.cfg.Issuer),
		jwt.WithRequiredClaim("exp"),
		jwt.WithRequiredClaim("sub"),
		jwt.WithClock(jwt.ClockFunc(u.cfg.Now)),
		jwt.WithAcceptableSkew(30 * time.Second),
	}
	if u.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(u.cfg.Audience))
	}
	tok, err := jwt.ParseString(raw, opts...)
	if err != nil {
		return User{}, fmt.Errorf("%w: %v", errBadJWT, err)
	}
	if len(u.cfg.AuthorizedParties) > 0 {
		var azp string
		if tok.Get("azp", &azp) != nil || !slices.Contains(u.cfg.AuthorizedParties, azp) {
			return User{}, fmt.Errorf("%w: azp is not an authorized party", errBadJWT)
		}
	}
	sub, _ := tok.Subject()
	user := User{Subject: sub}
	org, role := u.orgAndRole(tok)
	switch {
	case org == "" || role == "":
	case slices.Contains(u.cfg.AdminRoles, role):
		user.OrgID, user.Role = org, sa.RoleAdmin
	case slices.Contains(u.cfg.MemberRoles, role):
		user.OrgID, user.Role = org, sa.RoleMember
	}
	return user, nil
}

// orgAndRole reads the user's active org and role in the configured claim shape; either is ""
// when absent or not a string.
func (u *Users) orgAndRole(tok jwt.Token) (org, role string) {
	if u.cfg.Claims == ClaimsV1 {
		_ = tok.Get("org_id", &org)
		_ = tok.Get("org_role", &role)
		return org, role
	}
	var o map[string]any
	if tok.Get("o", &o) != nil {
		return "", ""
	}
	org, _ = o["id"].(string)
	role, _ = o["rol"].(string)
	return org, role
}

// keysFor returns the key set if it is within its lifetime and holds kid. Otherwise it fetches
// the set again, unless it fetched less than RefetchInterval ago: then a token with an unknown
// key id is refused, and keys that are past their lifetime or could not be fetched are an
// outage (errJWKS), failing closed without another request to the provider.
func (u *Users) keysFor(ctx context.Context, kid string) (jwk.Set, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.cfg.Now()
	fresh := u.keys != nil && now.Before(u.expires)
	if fresh {
		if _, ok := u.keys.LookupKeyID(kid); ok {
			return u.keys, nil
		}
	}
	if !u.attempted.IsZero() && now.Sub(u.attempted) < u.cfg.RefetchInterval {
		if fresh && !u.failed {
			return nil, fmt.Errorf("%w: unknown key id", errBadJWT)
		}
		return nil, fmt.Errorf("%w: no fresh keys, and the last fetch was under %s ago", errJWKS, u.cfg.RefetchInterval)
	}
	u.attempted = now
	keys, lifetime, err := u.fetch(ctx)
	u.failed = err != nil
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errJWKS, err)
	}
	u.keys, u.expires = keys, now.Add(lifetime)
	if _, ok := keys.LookupKeyID(kid); !ok {
		return nil, fmt.Errorf("%w: unknown key id", errBadJWT)
	}
	return keys, nil
}

// fetch gets the JWKS and how long to trust it.
func (u *Users) fetch(ctx context.Context) (jwk.Set, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.cfg.JWKSURL, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := u.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if len(body) > maxJWKSBytes {
		return nil, 0, errors.New("key set larger than 512 KiB")
	}
	keys, err := jwk.Parse(body)
	if err != nil {
		return nil, 0, err
	}
	return keys, KeyLifetime(resp.Header.Get("Cache-Control")), nil
}

// KeyLifetime is how long keys served with the Cache-Control header cc are trusted: its
// max-age within [MinKeyLifetime, MaxKeyLifetime]; MinKeyLifetime for no-store or no-cache;
// DefaultKeyLifetime when it says nothing usable.
func KeyLifetime(cc string) time.Duration {
	lifetime := DefaultKeyLifetime
	for _, d := range strings.Split(cc, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return MinKeyLifetime
		case "max-age":
			if secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil && secs >= 0 {
				lifetime = time.Duration(min(secs, int64(MaxKeyLifetime/time.Second))) * time.Second
			}
		}
	}
	return min(max(lifetime, MinKeyLifetime), MaxKeyLifetime)
}

// Environment variables that configure user JWT verification (template.yaml sets them from
// its identity-provider parameters).
const (
	EnvIssuer            = "IDENTITY_ISSUER"
	EnvJWKSURL           = "IDENTITY_JWKS_URL"
	EnvAudience          = "IDENTITY_AUDIENCE"
	EnvAuthorizedParties = "IDENTITY_AUTHORIZED_PARTIES"
	EnvClaims            = "IDENTITY_SESSION_CLAIMS"
	EnvAdminRoles        = "IDENTITY_ADMIN_ROLES"
	EnvMemberRoles       = "IDENTITY_MEMBER_ROLES"
)

// UserConfigFromEnv reads the user JWT settings through getenv. Lists are comma-separated. An
// issuer without a JWKS URL, or the reverse, is an error: half a configuration would silently
// refuse every user. So is a claim shape other than v1 or v2.
func UserConfigFromEnv(getenv func(string) string) (UserConfig, error) {
	cfg := UserConfig{
		Issuer: getenv(EnvIssuer), JWKSURL: getenv(EnvJWKSURL),
		Audience: getenv(EnvAudience), AuthorizedParties: config.List(getenv(EnvAuthorizedParties)),
		Claims:     getenv(EnvClaims),
		AdminRoles: config.List(getenv(EnvAdminRoles)), MemberRoles: config.List(getenv(EnvMemberRoles)),
	}
	if cfg.Issuer == "" || cfg.JWKSURL == "" {
		return UserConfig{}, fmt.Errorf("%s and %s must both be set", EnvIssuer, EnvJWKSURL)
	}
	if cfg.Claims != "" && cfg.Claims != ClaimsV1 && cfg.Claims != ClaimsV2 {
		return UserConfig{}, fmt.Errorf("%s must be %q or %q", EnvClaims, ClaimsV1, ClaimsV2)
	}
	return cfg, nil
}
