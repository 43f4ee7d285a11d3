package authorizer

import (
	"encoding/json"

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

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

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
	keys      *jose.JSONWebKeySet
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

// signatureAlgorithms are the algorithms a user JWT may be signed with: the asymmetric ones.
// HMAC is left out, so a token "signed" with a public key as its secret is never accepted, and
// go-jose never accepts "none".
var signatureAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// claims are the claims read beside the registered ones.
type claims struct {
	AuthorizedParty string `json:"azp"`
	OrgID           any    `json:"org_id"`   // v1
	OrgRole         any    `json:"org_role"` // v1
	Org             any    `json:"o"`        // v2: {"id", "rol", …}
}

// Verify checks a JWT's signature against the JWKS (the key its kid names, of the algorithm
// that key declares), its exp, nbf, iat, iss, aud and azp, and reads the user's org and role.
// Errors wrap errBadJWT for a token that is not accepted, and errJWKS when the keys could not
// be fetched.
func (u *Users) Verify(ctx context.Context, raw string) (User, error) {
	tok, err := jwt.ParseSigned(raw, signatureAlgorithms)
	if err != nil || len(tok.Headers) != 1 {
		return User{}, fmt.Errorf("%w: not a compact JWS of an accepted algorithm", errBadJWT)
	}
	kid := tok.Headers[0].KeyID
	if kid == "" {
		return User{}, fmt.Errorf("%w: no key id", errBadJWT)
	}
	key, err := u.keyFor(ctx, kid)
	if err != nil {
		return User{}, err
	}
	if key.Algorithm != "" && key.Algorithm != tok.Headers[0].Algorithm {
		return User{}, fmt.Errorf("%w: the key is for %s, not %s", errBadJWT, key.Algorithm, tok.Headers[0].Algorithm)
	}
	var std jwt.Claims
	var more claims
	if err := tok.Claims(key.Key, &std, &more); err != nil {
		return User{}, fmt.Errorf("%w: %v", errBadJWT, err)
	}
	expected := jwt.Expected{Issuer: u.cfg.Issuer, Time: u.cfg.Now()}
	if u.cfg.Audience != "" {
		expected.AnyAudience = jwt.Audience{u.cfg.Audience}
	}
	switch err := std.ValidateWithLeeway(expected, 30*time.Second); {
	case err != nil:
		return User{}, fmt.Errorf("%w: %v", errBadJWT, err)
	case std.Expiry == nil:
		return User{}, fmt.Errorf("%w: no exp", errBadJWT)
	case std.Subject == "":
		return User{}, fmt.Errorf("%w: no sub", errBadJWT)
	case u.cfg.Audience != "" && len(std.Audience) == 0:
		return User{}, fmt.Errorf("%w: no aud", errBadJWT)
	case len(u.cfg.AuthorizedParties) > 0 && !slices.Contains(u.cfg.AuthorizedParties, more.AuthorizedParty):
		return User{}, fmt.Errorf("%w: azp is not an authorized party", errBadJWT)
	}
	user := User{Subject: std.Subject}
	org, role := u.orgAndRole(more)
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
func (u *Users) orgAndRole(c claims) (org, role string) {
	if u.cfg.Claims == ClaimsV1 {
		org, _ = c.OrgID.(string)
		role, _ = c.OrgRole.(string)
		return org, role
	}
	o, _ := c.Org.(map[string]any)
	org, _ = o["id"].(string)
	role, _ = o["rol"].(string)
	return org, role
}

// keyFor returns the key kid names if the key set is within its lifetime and holds it.
// Otherwise it fetches the set again, unless it fetched less than RefetchInterval ago: then a
// token with an unknown key id is refused, and keys that are past their lifetime or could not
// be fetched are an outage (errJWKS), failing closed without another request to the provider.
func (u *Users) keyFor(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.cfg.Now()
	fresh := u.keys != nil && now.Before(u.expires)
	if fresh {
		if k := u.keys.Key(kid); len(k) > 0 {
			return k[0], nil
		}
	}
	if !u.attempted.IsZero() && now.Sub(u.attempted) < u.cfg.RefetchInterval {
		if fresh && !u.failed {
			return jose.JSONWebKey{}, fmt.Errorf("%w: unknown key id", errBadJWT)
		}
		return jose.JSONWebKey{}, fmt.Errorf("%w: no fresh keys, and the last fetch was under %s ago", errJWKS, u.cfg.RefetchInterval)
	}
	u.attempted = now
	keys, lifetime, err := u.fetch(ctx)
	u.failed = err != nil
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("%w: %v", errJWKS, err)
	}
	u.keys, u.expires = keys, now.Add(lifetime)
	k := keys.Key(kid)
	if len(k) == 0 {
		return jose.JSONWebKey{}, fmt.Errorf("%w: unknown key id", errBadJWT)
	}
	return k[0], nil
}

// fetch gets the JWKS and how long to trust it. Keys that are not public keys for signatures
// are left out.
func (u *Users) fetch(ctx context.Context) (*jose.JSONWebKeySet, time.Duration, error) {
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
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, 0, fmt.Errorf("key set: %w", err)
	}
	keys := &jose.JSONWebKeySet{}
	for _, k := range set.Keys {
		if k.IsPublic() && k.Valid() && (k.Use == "" || k.Use == "sig") {
			keys.Keys = append(keys.Keys, k)
		}
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
