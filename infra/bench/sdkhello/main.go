// Command sdkhello is the smallest Go Lambda function that does what the authorizer's first
// request needs of AWS: a DynamoDB client built from the variables Lambda sets (region,
// credentials, and an endpoint override as the SDK reads it), and one consistent GetItem per
// invocation. It is the fairer of the cold-start benchmark's two baselines: what the AWS SDK
// itself costs, beside hello world. It uses no package of this repository.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func main() {
	env := os.Getenv
	o := dynamodb.Options{
		Region:      env("AWS_REGION"),
		Credentials: credentials.NewStaticCredentialsProvider(env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")),
	}
	if e := env("AWS_ENDPOINT_URL_DYNAMODB"); e != "" {
		o.BaseEndpoint = aws.String(e)
	}
	db := dynamodb.New(o)
	in := &dynamodb.GetItemInput{
		TableName: aws.String(env("TABLE_NAME")), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: env("BENCH_KEY_PK")},
			"sk": &types.AttributeValueMemberS{Value: env("BENCH_KEY_SK")},
		},
	}
	lambda.Start(func(ctx context.Context, _ map[string]any) (string, error) {
		out, err := db.GetItem(ctx, in)
		if err != nil {
			return "", err
		}
		if out.Item == nil {
			return "no item", nil
		}
		return "item", nil
	})
}
