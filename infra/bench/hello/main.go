// Command hello is the smallest Go Lambda function, built exactly as the service's functions
// are: the baseline the cold-start benchmark compares the authorizer with.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(context.Context, map[string]any) (string, error) { return "hello", nil })
}
