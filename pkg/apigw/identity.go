// Package apigw adapts API Gateway REST proxy events to the domain: it reads the caller the
// authorizer established, decodes and bounds request bodies, checks role and org, calls the
// service and writes JSON or problem+json (RFC 9457) responses. It knows nothing of DynamoDB.
package apigw

import (
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Principal types the authorizer puts in its context.
const (
	PrincipalUser           = "user"
	PrincipalServiceAccount = "service_account"
)

// Roles of dashboard users within their org.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Authorizer context keys. API Gateway passes the authorizer's context to the function as
// requestContext.authorizer, string values only.
const (
	CtxPrincipalType      = "principalType"
	CtxOrgID              = "orgId"
	CtxSubject            = "sub"
	CtxRole               = "role"
	CtxServiceAccountID   = "serviceAccountId"
	CtxServiceAccountName = "serviceAccountName"
	CtxTokenID            = "tokenId"
	CtxExpiresAt          = "expiresAt"  // tokens only, RFC 3339 UTC; absent when the token never expires
	CtxLastUsedAt         = "lastUsedAt" // tokens only, RFC 3339 UTC; absent when it was never used before
)

// Caller is the principal the authorizer established for a request.
type Caller struct {
	PrincipalType      string
	OrgID              string
	Subject            string // the user id, or the service account id
	Role               string // users only
	ServiceAccountID   string // service accounts only
	ServiceAccountName string
	TokenID            string
	ExpiresAt          string // RFC 3339 UTC, "" when the token never expires
	LastUsedAt         string // RFC 3339 UTC, "" when the token had not been used before
}

// Context returns the authorizer context that represents c.
func (c Caller) Context() map[string]any {
	m := make(map[string]any, 8)
	for _, kv := range [...]struct{ k, v string }{
		{CtxPrincipalType, c.PrincipalType}, {CtxOrgID, c.OrgID}, {CtxSubject, c.Subject},
		{CtxRole, c.Role}, {CtxServiceAccountID, c.ServiceAccountID},
		{CtxServiceAccountName, c.ServiceAccountName}, {CtxTokenID, c.TokenID},
		{CtxExpiresAt, c.ExpiresAt}, {CtxLastUsedAt, c.LastUsedAt},
	} {
		if kv.v != "" {
			m[kv.k] = kv.v
		}
	}
	return m
}

// CallerFrom reads the caller from the authorizer context of a request. A request without a
// complete context never reaches a handler through API Gateway, so its absence is an error.
// The optional times must be RFC 3339 when present; they are returned in UTC.
func CallerFrom(rc events.APIGatewayProxyRequestContext) (Caller, error) {
	get := func(k string) string {
		s, _ := rc.Authorizer[k].(string)
		return s
	}
	c := Caller{
		PrincipalType: get(CtxPrincipalType), OrgID: get(CtxOrgID), Subject: get(CtxSubject),
		Role: get(CtxRole), ServiceAccountID: get(CtxServiceAccountID),
		ServiceAccountName: get(CtxServiceAccountName), TokenID: get(CtxTokenID),
	}
	// A malformed time is the authorizer's bug; refusing it here keeps it out of responses.
	for _, f := range []struct {
		key string
		dst *string
	}{{CtxExpiresAt, &c.ExpiresAt}, {CtxLastUsedAt, &c.LastUsedAt}} {
		raw := rc.Authorizer[f.key]
		s, isString := raw.(string)
		if raw == nil || (isString && s == "") {
			continue // absent: the token never expires, or had not been used before
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return Caller{}, fmt.Errorf("authorizer context has a malformed %s", f.key)
		}
		*f.dst = t.UTC().Format(time.RFC3339Nano)
	}
	switch {
	case c.OrgID == "" || c.Subject == "":
		return Caller{}, fmt.Errorf("authorizer context lacks org or subject")
	case c.PrincipalType == PrincipalUser && (c.Role == RoleAdmin || c.Role == RoleMember):
	case c.PrincipalType == PrincipalServiceAccount && c.ServiceAccountID != "" && c.TokenID != "":
	default:
		return Caller{}, fmt.Errorf("authorizer context has an unknown principal %q or role %q", c.PrincipalType, c.Role)
	}
	return c, nil
}
