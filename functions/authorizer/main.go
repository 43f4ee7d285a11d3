// Command authorizer is the API's Lambda TOKEN authorizer. Until token and JWT verification
// land it refuses every request, so the API it guards fails closed.
package main

import (
	"context"
	"errors"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(context.Context, events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
		return events.APIGatewayCustomAuthorizerResponse{}, errors.New("Unauthorized")
	})
}
