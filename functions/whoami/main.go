// Command whoami is the Lambda function behind GET /v1/whoami, which tells a token holder who
// the authorizer says they are. It needs no table and no secret: the answer is in the
// authorizer context of every request.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/config"
)

func main() {
	log := config.Must(config.Logger(os.Getenv))
	lambda.Start(apigw.NewWhoami(log))
}
