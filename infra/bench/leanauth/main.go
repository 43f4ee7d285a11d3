// Command leanauth is not deployed: it is the authorizer wired as docs/PERFORMANCE.md proposes,
// so that `make bench` can cold-start the proposal beside the real one. It differs from
// functions/authorizer only in how it builds its AWS clients: from the Lambda environment
// (region, the execution role's credentials, which Lambda hands over in environment variables,
// and the AWS_ENDPOINT_URL_<SERVICE> overrides the SDK honours) instead of
// config.LoadDefaultConfig, whose shared-config, SSO, STS, sign-in and IMDS credential chain a
// Lambda function never runs but links, initialises and walks at every cold start. It cannot
// import pkg/config, which imports that loader, so it repeats the few lines of wiring it needs.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/opentrace/service-accounts/pkg/authorizer"
	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// lambdaAWS is the AWS configuration of a function running in Lambda.
func lambdaAWS() aws.Config {
	return aws.Config{
		Region: os.Getenv("AWS_REGION"),
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(
			os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN"))),
	}
}

// endpoint is the SDK's service-specific endpoint override, when set (tests and the emulator).
func endpoint(name string) *string {
	if v := os.Getenv("AWS_ENDPOINT_URL_" + name); v != "" {
		return aws.String(v)
	}
	return nil
}

func run(ctx context.Context) (*authorizer.Authorizer, error) {
	users, err := authorizer.UserConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	limits := sa.DefaultLimits
	if raw := os.Getenv("LAST_USED_INTERVAL_SECONDS"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("LAST_USED_INTERVAL_SECONDS=%q", raw)
		}
		limits.LastUsedInterval = time.Duration(n) * time.Second
	}
	cfg := lambdaAWS()
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = endpoint("DYNAMODB") })
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = endpoint("SECRETS_MANAGER") })
	peppers := secrets.NewSecretsManager(sm, os.Getenv("PEPPER_SECRET_ID"))
	if _, err := peppers.Keyring(ctx); err != nil {
		return nil, fmt.Errorf("read pepper secret: %w", err)
	}
	store := dynamo.NewUnsigned(db, os.Getenv("TABLE_NAME"))
	return &authorizer.Authorizer{
		Service: sa.NewService(store, secrets.Peppers{Source: peppers}, sa.WithLimits(limits)),
		Users:   authorizer.NewUsers(users),
		Log:     slog.New(slog.NewJSONHandler(os.Stdout, nil)),
	}, nil
}

func main() {
	a, err := run(context.Background())
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("cold start failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
	lambda.Start(a.Handle)
}
