package apigw

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Routes of the data plane: what service-account tokens (and dashboard users) call.
const (
	RouteWhoami = "/v1/whoami"
	RouteMCP    = "/mcp/v1"
)

// NewWhoami returns the handler of GET /v1/whoami, which tells the caller who the authorizer
// says they are: for a token, its org, service account, token id, expiry and last use; for a
// user, their org and role. It answers from the authorizer context alone, so checking a
// token costs no database read beyond the authorizer's own. It logs one line per request
// with log, never the credential.
//
// Errors: a request without a complete authorizer context is a 500 (EINTERNAL), since API
// Gateway never invokes the function without one.
func NewWhoami(log *slog.Logger) Handler {
	// API has the request log line of the management routes; reusing it keeps one log format.
	logger := &API{Log: log}
	return func(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		start := time.Now()
		c, err := PrincipalFrom(req.RequestContext)
		var body any
		if err != nil {
			err = sa.Internal(err)
		} else {
			body = c.Whoami()
		}
		resp := Respond(http.StatusOK, body, err)
		logger.logRequest(ctx, req, c, resp.StatusCode, start, err)
		return resp, nil
	}
}
