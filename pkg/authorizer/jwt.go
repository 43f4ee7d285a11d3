package authorizer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Roles a user may hold in an org, as the authorizer context names them.
const (
	roleAdmin  = "admin"
	roleMember = "member"
)

// UserConfig says how dashboard users' JWTs are verified and read. The defaults suit Clerk.
type UserConfig struct {
	Issuer      string
	JWKSURL     string
	Audience    string   // "" accepts tokens without an audience check
	OrgClaim    string   // default "org_id"
	RoleClaim   string   // default "org_role"
	AdminRoles  []string // default ["org:admin"]
	MemberRoles []string // default ["org:member"]
	// RefetchInterval bounds how often a token with an unknown key id makes the verifier
	// fetch the JWKS again, so forged key ids cannot turn the authorizer into a load
	// generator against the identity provider. Default 30 s.
	RefetchInterval time.Duration
	HTTPClient      *http.Client     // default: a client with a 3 s timeout
	Now             func() time.Time // default time.Now
}

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
// and fetched again when a token names a key id the cache does not hold (key rotation).
type Users struct {
	cfg UserConfig

	mu        sync.Mutex
	keys      jwk.Set
	fetchedAt time.Time
}

// NewUsers returns a verifier for cfg, applying defaults.
func NewUsers(cfg UserConfig) *Users {
	if cfg.OrgClaim == "" {
		cfg.OrgClaim = "org_id"
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = "org_role"
	}
	if cfg.AdminRoles == nil {
		cfg.AdminRoles = []string{"org:admin"}
	}
	if cfg.MemberRoles == nil {
		cfg.MemberRoles = []string{"org:member"}
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

// Verify checks a JWT's signature against the JWKS, its exp, nbf, iss and aud, and reads the
// user's org and role. Errors wrap errBadJWT for a token that is not accepted, and errJWKS when
// the keys could not be fetched.
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
	sub, _ := tok.Subject()
	user := User{Subject: sub}
	var org, role string
	if tok.Get(u.cfg.OrgClaim, &org) != nil || tok.Get(u.cfg.RoleClaim, &role) != nil {
		return user, nil
	}
	switch {
	case contains(u.cfg.AdminRoles, role):
		user.OrgID, user.Role = org, roleAdmin
	case contains(u.cfg.MemberRoles, role):
		user.OrgID, user.Role = org, roleMember
	}
	return user, nil
}

// keysFor returns the key set, fetching it first if it is not loaded yet, or if it lacks kid
// and the last fetch is older than the refetch interval.
func (u *Users) keysFor(ctx context.Context, kid string) (jwk.Set, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.keys != nil {
		if _, ok := u.keys.LookupKeyID(kid); ok {
			return u.keys, nil
		}
		if u.cfg.Now().Sub(u.fetchedAt) < u.cfg.RefetchInterval {
			return nil, fmt.Errorf("%w: unknown key id", errBadJWT)
		}
	}
	keys, err := jwk.Fetch(ctx, u.cfg.JWKSURL, jwk.WithHTTPClient(u.cfg.HTTPClient))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errJWKS, err)
	}
	u.keys, u.fetchedAt = keys, u.cfg.Now()
	if _, ok := keys.LookupKeyID(kid); !ok {
		return nil, fmt.Errorf("%w: unknown key id", errBadJWT)
	}
	return keys, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Environment variables that configure user JWT verification (template.yaml sets them from
// its identity-provider parameters).
const (
	EnvIssuer      = "IDENTITY_ISSUER"
	EnvJWKSURL     = "IDENTITY_JWKS_URL"
	EnvAudience    = "IDENTITY_AUDIENCE"
	EnvOrgClaim    = "IDENTITY_ORG_CLAIM"
	EnvRoleClaim   = "IDENTITY_ROLE_CLAIM"
	EnvAdminRoles  = "IDENTITY_ADMIN_ROLES"
	EnvMemberRoles = "IDENTITY_MEMBER_ROLES"
)

// UserConfigFromEnv reads the user JWT settings through getenv. Role lists are
// comma-separated. An issuer without a JWKS URL, or the reverse, is an error: half a
// configuration would silently refuse every user.
func UserConfigFromEnv(getenv func(string) string) (UserConfig, error) {
	cfg := UserConfig{
		Issuer: getenv(EnvIssuer), JWKSURL: getenv(EnvJWKSURL), Audience: getenv(EnvAudience),
		OrgClaim: getenv(EnvOrgClaim), RoleClaim: getenv(EnvRoleClaim),
		AdminRoles: splitList(getenv(EnvAdminRoles)), MemberRoles: splitList(getenv(EnvMemberRoles)),
	}
	if cfg.Issuer == "" || cfg.JWKSURL == "" {
		return UserConfig{}, fmt.Errorf("%s and %s must both be set", EnvIssuer, EnvJWKSURL)
	}
	return cfg, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
