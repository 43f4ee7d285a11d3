package authorizer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/token"
)

// ErrUnauthorized is the one error API Gateway turns into 401: its message must be exactly
// "Unauthorized". Any other error becomes a 500, which is how the authorizer fails closed.
var ErrUnauthorized = errors.New("Unauthorized")

// DefaultUsageTimeout bounds the last-used write, which must never hold up or fail a request.
const DefaultUsageTimeout = 250 * time.Millisecond

// Authorizer answers API Gateway's TOKEN authorizer requests.
type Authorizer struct {
	Service *sa.Service
	Users   *Users // nil refuses every user JWT
	// Context encodes an allowed principal as the authorizer context API Gateway passes on to
	// the function (apigw.AuthorizerContext, which the functions decode).
	Context      func(sa.Principal) map[string]any
	Log          *slog.Logger
	UsageTimeout time.Duration
}

// Handle authorizes one request. It returns an Allow policy listing every route the
// principal may call, with the principal in the context; a deny-all policy (403) for a valid
// user who may call nothing; ErrUnauthorized (401) for a missing, malformed, unknown, revoked
// or expired credential; and any other error (500, never an allow) when a dependency fails.
func (a *Authorizer) Handle(ctx context.Context, req events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	base, err := routeBase(req.MethodArn)
	if err != nil {
		a.Log.ErrorContext(ctx, "authorize", slog.String("decision", "error"), slog.String("reason", err.Error()))
		return events.APIGatewayCustomAuthorizerResponse{}, err
	}
	cred, ok := ParseBearer(req.AuthorizationToken)
	switch {
	case !ok:
		return a.unauthorized(ctx, "no bearer credential", "")
	case strings.HasPrefix(cred, token.Prefix):
		return a.serviceAccount(ctx, base, cred)
	case a.Users != nil && strings.Count(cred, ".") == 2:
		return a.user(ctx, base, cred)
	default:
		return a.unauthorized(ctx, "credential is neither a token nor a JWT", fingerprint(cred))
	}
}

func (a *Authorizer) serviceAccount(ctx context.Context, base, cred string) (events.APIGatewayCustomAuthorizerResponse, error) {
	id, err := a.Service.Authenticate(ctx, cred)
	if sa.ErrorCode(err) == sa.EUNAUTHORIZED {
		return a.unauthorized(ctx, reason(err), fingerprint(cred))
	}
	if err != nil {
		a.Log.ErrorContext(ctx, "authorize", slog.String("decision", "error"), slog.String("error", err.Error()))
		return events.APIGatewayCustomAuthorizerResponse{}, errors.New("authorizer dependency failed")
	}
	a.recordUsage(ctx, id)
	p := sa.Principal{
		Type: sa.PrincipalServiceAccount, OrgID: id.OrgID, Subject: id.ServiceAccountID,
		ServiceAccountID: id.ServiceAccountID, ServiceAccountName: id.ServiceAccountName, TokenID: id.TokenID,
		ExpiresAt: rfc3339(id.ExpiresAt), LastUsedAt: rfc3339(id.LastUsedAt),
	}
	a.Log.InfoContext(ctx, "authorize", slog.String("decision", "allow"), slog.String("principalType", p.Type),
		slog.String("orgId", p.OrgID), slog.String("serviceAccountId", p.ServiceAccountID), slog.String("tokenId", p.TokenID))
	return policy("sa:"+id.ServiceAccountID, base, dataRoutes, a.Context(p)), nil
}

// recordUsage writes the token's last use, bounded by UsageTimeout; a failure is logged and
// never fails the request, since last use is bookkeeping, not access control.
func (a *Authorizer) recordUsage(ctx context.Context, id sa.Identity) {
	timeout := a.UsageTimeout
	if timeout == 0 {
		timeout = DefaultUsageTimeout
	}
	if err := a.Service.RecordUsage(ctx, id, timeout); err != nil {
		a.Log.WarnContext(ctx, "record last use", slog.String("tokenId", id.TokenID), slog.String("error", err.Error()))
	}
}

func (a *Authorizer) user(ctx context.Context, base, cred string) (events.APIGatewayCustomAuthorizerResponse, error) {
	u, err := a.Users.Verify(ctx, cred)
	switch {
	case errors.Is(err, errJWKS):
		a.Log.ErrorContext(ctx, "authorize", slog.String("decision", "error"), slog.String("error", err.Error()))
		return events.APIGatewayCustomAuthorizerResponse{}, errors.New("authorizer dependency failed")
	case err != nil:
		return a.unauthorized(ctx, err.Error(), fingerprint(cred))
	}
	principal := "user:" + u.Subject
	if u.Role == "" || !sa.ValidOrgID(u.OrgID) {
		// A real user with no org, or an org id that is not one, may call nothing. The org
		// id lands in policy resources, so it must never carry a wildcard.
		a.Log.InfoContext(ctx, "authorize", slog.String("decision", "deny"), slog.String("principalType", sa.PrincipalUser),
			slog.String("sub", u.Subject), slog.String("reason", "no usable org or role"))
		return denyAll(principal, base), nil
	}
	p := sa.Principal{Type: sa.PrincipalUser, OrgID: u.OrgID, Subject: u.Subject, Role: u.Role}
	a.Log.InfoContext(ctx, "authorize", slog.String("decision", "allow"), slog.String("principalType", p.Type),
		slog.String("orgId", p.OrgID), slog.String("sub", p.Subject), slog.String("role", p.Role))
	return policy(principal, base, userResources(u.OrgID, u.Role), a.Context(p)), nil
}

func (a *Authorizer) unauthorized(ctx context.Context, reason, fp string) (events.APIGatewayCustomAuthorizerResponse, error) {
	a.Log.InfoContext(ctx, "authorize", slog.String("decision", "unauthorized"), slog.String("reason", reason),
		slog.String("fingerprint", fp))
	return events.APIGatewayCustomAuthorizerResponse{}, ErrUnauthorized
}

// fingerprint identifies a presented credential in logs without revealing it: 8 hex
// characters of its SHA-256, enough to correlate repeated attempts.
func fingerprint(cred string) string {
	sum := sha256.Sum256([]byte(cred))
	return hex.EncodeToString(sum[:4])
}

func rfc3339(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// reason is why a credential was refused, for the log: the cause under the refusal's public
// message, or the message itself when there is no cause.
func reason(err error) string {
	if cause := errors.Unwrap(err); cause != nil {
		return cause.Error()
	}
	return err.Error()
}
