// Command usage is the Lambda function on the table's stream: it rolls each token's last use up
// from its credential to the token's metadata and its service account.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/opentrace/service-accounts/pkg/config"
	"github.com/opentrace/service-accounts/pkg/usage"
)

func main() {
	store, log, err := config.TableFromEnvironment(context.Background(), os.Getenv)
	config.Must(store, err)
	h := &usage.Handler{Store: store, Log: log}
	lambda.Start(h.Handle)
}
