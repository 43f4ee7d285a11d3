// Command authorizer is the API's Lambda TOKEN authorizer: service-account tokens and
// dashboard user JWTs in, an IAM policy and an identity context (or 401/403) out.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/opentrace/service-accounts/pkg/authorizer"
	"github.com/opentrace/service-accounts/pkg/config"
)

func main() {
	users := config.Must(authorizer.UserConfigFromEnv(os.Getenv))
	app := config.Must(config.FromEnvironment(context.Background()))
	a := &authorizer.Authorizer{Service: app.Service, Users: authorizer.NewUsers(users), Log: app.Log}
	lambda.Start(a.Handle)
}
