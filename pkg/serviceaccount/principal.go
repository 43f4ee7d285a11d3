package serviceaccount

import (
	"context"
	"errors"
	"fmt"
)

// Principal types: who calls.
const (
	PrincipalUser           = "user"            // a dashboard user of an org
	PrincipalServiceAccount = "service_account" // a service account, through one of its tokens
)

// Roles of dashboard users within their org.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Principal is who calls, as the authorizer established it: a dashboard user of an org with a
// role, or a service account of an org presenting one of its tokens.
type Principal struct {
	Type    string // PrincipalUser or PrincipalServiceAccount
	OrgID   string
	Subject string // the user id, or the service account id
	Role    string // users only

	// Service accounts only: the token presented, its expiry and its last use before this
	// request, as RFC 3339 UTC ("" when it never expires, or was never used before).
	ServiceAccountID   string
	ServiceAccountName string
	TokenID            string
	ExpiresAt          string
	LastUsedAt         string
}

// Check reports whether p is a principal the authorizer could have established: an org and a
// subject, and a user with a known role or a service account with its token.
func (p Principal) Check() error {
	switch {
	case p.OrgID == "" || p.Subject == "":
		return errors.New("principal lacks an org or a subject")
	case p.Type == PrincipalUser && (p.Role == RoleAdmin || p.Role == RoleMember):
		return nil
	case p.Type == PrincipalServiceAccount && p.ServiceAccountID != "" && p.TokenID != "":
		return nil
	}
	return fmt.Errorf("principal has an unknown type %q or role %q", p.Type, p.Role)
}

type principalKey struct{}

// NewContextWithPrincipal returns a copy of ctx that carries p.
func NewContextWithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal ctx carries, and false if it carries none.
func PrincipalFromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// ServiceAccountWhoami is what a service-account token learns of itself: GET /v1/whoami and
// the MCP whoami tool. Times are RFC 3339 UTC, null when the token never expires or had not
// been used before.
type ServiceAccountWhoami struct {
	PrincipalType      string  `json:"principalType" jsonschema:"service_account: an API token"`
	OrgID              string  `json:"orgId" jsonschema:"the OpenTrace organisation the token belongs to"`
	ServiceAccountID   string  `json:"serviceAccountId" jsonschema:"the service account that owns the token"`
	ServiceAccountName string  `json:"serviceAccountName" jsonschema:"the name of that service account"`
	TokenID            string  `json:"tokenId" jsonschema:"the token in use (an id, never the secret)"`
	ExpiresAt          *string `json:"expiresAt" jsonschema:"when the token expires, RFC 3339 UTC; null if it never expires"`
	LastUsedAt         *string `json:"lastUsedAt" jsonschema:"when the token was last used before, RFC 3339 UTC; null if never"`
}

// UserWhoami is what a dashboard user learns of themselves.
type UserWhoami struct {
	PrincipalType string `json:"principalType" jsonschema:"user: a dashboard user"`
	OrgID         string `json:"orgId" jsonschema:"the OpenTrace organisation"`
	UserID        string `json:"userId" jsonschema:"the dashboard user"`
	Role          string `json:"role" jsonschema:"the user's role in the organisation: admin or member"`
}

// Whoami is what p learns of itself: a ServiceAccountWhoami or a UserWhoami.
func (p Principal) Whoami() any {
	if p.Type == PrincipalServiceAccount {
		return ServiceAccountWhoami{
			PrincipalType: p.Type, OrgID: p.OrgID, ServiceAccountID: p.ServiceAccountID,
			ServiceAccountName: p.ServiceAccountName, TokenID: p.TokenID,
			ExpiresAt: nullable(p.ExpiresAt), LastUsedAt: nullable(p.LastUsedAt),
		}
	}
	return UserWhoami{PrincipalType: p.Type, OrgID: p.OrgID, UserID: p.Subject, Role: p.Role}
}

// nullable is "" (absent) as JSON null.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
