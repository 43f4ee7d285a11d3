// Command list is the Lambda function behind the read routes: GET /orgs/{orgId}/service-accounts,
// GET .../{saId}, GET .../{saId}/tokens and GET /orgs/{orgId}/audit.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/config"
)

func main() {
	app := config.Must(config.FromEnvironment(context.Background()))
	api := &apigw.API{Service: app.Service, Log: app.Log}
	lambda.Start(api.Read)
}
