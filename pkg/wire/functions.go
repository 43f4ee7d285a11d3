package wire

import (
	"context"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/audit"
)

// The shapes of the functions' handlers other than API routes (apigw.Handler).
type (
	// AuthorizerHandler is a Lambda TOKEN authorizer.
	AuthorizerHandler = func(context.Context, events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error)
	// StreamHandler consumes the table's stream.
	StreamHandler = func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error)
	// AuditHandler runs on a schedule.
	AuditHandler = func(context.Context, events.EventBridgeEvent) (audit.Summary, error)
)

// route is one method of the management API.
type route = func(*apigw.API, context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error)

func api(ctx context.Context, rt Runtime, needs Secrets, r route) (apigw.Handler, error) {
	app, err := NewApp(ctx, rt, needs)
	if err != nil {
		return nil, err
	}
	a := &apigw.API{Service: app.Service, Log: app.Log}
	return func(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		return r(a, ctx, req)
	}, nil
}

// Create is the function behind POST /orgs/{orgId}/service-accounts.
func Create(ctx context.Context, rt Runtime) (apigw.Handler, error) {
	return api(ctx, rt, 0, (*apigw.API).Create)
}

// List is the function behind the management API's reads.
func List(ctx context.Context, rt Runtime) (apigw.Handler, error) {
	return api(ctx, rt, Cursors, (*apigw.API).Read)
}

// Generate is the function behind POST …/service-accounts/{saId}/tokens.
func Generate(ctx context.Context, rt Runtime) (apigw.Handler, error) {
	return api(ctx, rt, Peppers, (*apigw.API).Generate)
}

// Revoke is the function behind DELETE …/tokens/{tokenId}.
func Revoke(ctx context.Context, rt Runtime) (apigw.Handler, error) {
	return api(ctx, rt, 0, (*apigw.API).Revoke)
}

// Delete is the function behind DELETE /orgs/{orgId}/service-accounts/{saId}.
func Delete(ctx context.Context, rt Runtime) (apigw.Handler, error) {
	return api(ctx, rt, 0, (*apigw.API).Delete)
}

// Whoami is the function behind GET /v1/whoami: it answers from the authorizer's context and
// needs no AWS client.
func Whoami(_ context.Context, rt Runtime) (apigw.Handler, error) {
	log, err := Logger(rt)
	if err != nil {
		return nil, err
	}
	return apigw.NewWhoami(log), nil
}
