// Package authorizerfn composes the API's Lambda TOKEN authorizer. It is apart from package
// wire so that only the authorizer's binary links the JWT library.
package authorizerfn

import (
	"context"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/authorizer"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// New builds the authorizer: service-account tokens through the service, dashboard user JWTs
// through the identity provider's JWKS.
func New(ctx context.Context, rt wire.Runtime) (wire.AuthorizerHandler, error) {
	users, err := authorizer.UserConfigFromEnv(rt.Getenv)
	if err != nil {
		return nil, err
	}
	users.Now = rt.Now
	app, err := wire.NewApp(ctx, rt, wire.Peppers)
	if err != nil {
		return nil, err
	}
	return (&authorizer.Authorizer{Service: app.Service, Users: authorizer.NewUsers(users), Context: apigw.AuthorizerContext, Log: app.Log}).Handle, nil
}
