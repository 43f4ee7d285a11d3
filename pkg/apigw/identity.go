// Package apigw adapts API Gateway REST proxy events to the domain: it reads the principal the
// authorizer established, decodes and bounds request bodies, checks role and org, calls the
// service and writes JSON or problem+json (RFC 9457) responses. It knows nothing of DynamoDB.
package apigw

import (
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
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

// AuthorizerContext encodes p as the authorizer's context, which API Gateway hands to the
// function (PrincipalFrom decodes it).
func AuthorizerContext(p sa.Principal) map[string]any {
	m := make(map[string]any, 9)
	for _, kv := range [...]struct{ k, v string }{
		{CtxPrincipalType, p.Type}, {CtxOrgID, p.OrgID}, {CtxSubject, p.Subject},
		{CtxRole, p.Role}, {CtxServiceAccountID, p.ServiceAccountID},
		{CtxServiceAccountName, p.ServiceAccountName}, {CtxTokenID, p.TokenID},
		{CtxExpiresAt, p.ExpiresAt}, {CtxLastUsedAt, p.LastUsedAt},
	} {
		if kv.v != "" {
			m[kv.k] = kv.v
		}
	}
	return m
}

// PrincipalFrom reads the principal from the authorizer context of a request. A request
// without a complete context never reaches a handler through API Gateway, so its absence is
// an error. The optional times must be RFC 3339 when present; they are returned in UTC.
func PrincipalFrom(rc events.APIGatewayProxyRequestContext) (sa.Principal, error) {
	get := func(k string) string {
		s, _ := rc.Authorizer[k].(string)
		return s
	}
	p := sa.Principal{
		Type: get(CtxPrincipalType), OrgID: get(CtxOrgID), Subject: get(CtxSubject),
		Role: get(CtxRole), ServiceAccountID: get(CtxServiceAccountID),
		ServiceAccountName: get(CtxServiceAccountName), TokenID: get(CtxTokenID),
	}
	// A malformed time is the authorizer's bug; refusing it here keeps it out of responses.
	for _, f := range []struct {
		key string
		dst *string
	}{{CtxExpiresAt, &p.ExpiresAt}, {CtxLastUsedAt, &p.LastUsedAt}} {
		raw := rc.Authorizer[f.key]
		s, isString := raw.(string)
		if raw == nil || (isString && s == "") {
			continue // absent: the token never expires, or had not been used before
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return sa.Principal{}, fmt.Errorf("authorizer context has a malformed %s", f.key)
		}
		*f.dst = t.UTC().Format(time.RFC3339Nano)
	}
	if err := p.Check(); err != nil {
		return sa.Principal{}, fmt.Errorf("authorizer context: %w", err)
	}
	return p, nil
}
