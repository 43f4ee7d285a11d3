// Package wire composes the Lambda functions: each function has exactly one constructor, which
// takes the function's Runtime (its environment variables, its AWS clients, the clock and
// where it writes) and returns its handler. functions/*/main.go calls it with the Lambda
// environment (Start); the local stack and the tests call the same constructor with clients
// pointed at local endpoints, so the template's settings apply locally exactly as in AWS.
//
// The authorizer's and the MCP function's constructors live in subpackages (authorizerfn,
// mcpfn), so that no other function's binary links the JWT library or the MCP SDK.
package wire

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/opentrace/service-accounts/pkg/config"
	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Runtime is a function's world: what Lambda gives it.
type Runtime struct {
	Getenv func(string) string // its environment variables, as template.yaml sets them
	AWS    AWS                 // how it reaches AWS
	Now    func() time.Time    // nil: time.Now
	Stdout io.Writer           // its logs and embedded metrics; nil: os.Stdout
}

// Clock is the function's clock: Now, or time.Now.
func (rt Runtime) Clock() func() time.Time {
	if rt.Now == nil {
		return time.Now
	}
	return rt.Now
}

// Output is where the function writes its logs and metrics: Stdout, or os.Stdout.
func (rt Runtime) Output() io.Writer {
	if rt.Stdout == nil {
		return os.Stdout
	}
	return rt.Stdout
}

// AWS says how a function's clients reach AWS: its region, its credentials, the HTTP client
// every call goes through, and any endpoint that is not AWS's own, by service.
type AWS struct {
	Region      string
	Credentials aws.CredentialsProvider
	HTTPClient  aws.HTTPClient     // nil: the SDK's default
	Endpoints   map[string]string  // "dynamodb", "secretsmanager" → base endpoint
	Retryer     func() aws.Retryer // nil: the SDK's standard retries
	// Warm opens the connection to DynamoDB while a cold start reads its secret, so the first
	// request finds it open: on AWS the two are network round trips, TLS handshakes included.
	Warm bool
}

// warm opens a connection to service's endpoint in the background, through the HTTP client
// the service's SDK client uses, and closes the channel once it is done (or failed: it is an
// optimisation, so it reports nothing).
func (a AWS) warm(service string) <-chan struct{} {
	done := make(chan struct{})
	endpoint := "https://" + service + "." + a.Region + ".amazonaws.com"
	if e := a.endpoint(service); e != nil {
		endpoint = *e
	}
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(endpoint, "/")+"/", nil)
		if err != nil || a.HTTPClient == nil {
			return
		}
		if resp, err := a.HTTPClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			_ = resp.Body.Close()
		}
	}()
	return done
}

// DynamoDB returns a DynamoDB client.
func (a AWS) DynamoDB() *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region: a.Region, Credentials: a.Credentials, HTTPClient: a.HTTPClient, BaseEndpoint: a.endpoint("dynamodb"),
	}, func(o *dynamodb.Options) { a.retries(&o.Retryer) })
}

// SecretsManager returns a Secrets Manager client.
func (a AWS) SecretsManager() *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region: a.Region, Credentials: a.Credentials, HTTPClient: a.HTTPClient, BaseEndpoint: a.endpoint("secretsmanager"),
	}, func(o *secretsmanager.Options) { a.retries(&o.Retryer) })
}

func (a AWS) retries(r *aws.Retryer) {
	if a.Retryer != nil {
		*r = a.Retryer()
	}
}

func (a AWS) endpoint(service string) *string {
	if e, ok := a.Endpoints[service]; ok {
		return aws.String(e)
	}
	return nil
}

// FromLambda is the runtime Lambda gives a function: its process environment, and clients
// from the variables Lambda sets (AWS_REGION and the execution role's AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN), without the SDK's shared-config loader, which
// a function never needs and whose package initialisation costs every cold start. Endpoints
// come from AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL, as the SDK reads them, so a
// bootstrap can run against local endpoints.
func FromLambda() Runtime {
	env := os.Getenv
	endpoints := map[string]string{}
	for service, variable := range map[string]string{"dynamodb": "AWS_ENDPOINT_URL_DYNAMODB", "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER"} {
		if e := env(variable); e != "" {
			endpoints[service] = e
		} else if e := env("AWS_ENDPOINT_URL"); e != "" {
			endpoints[service] = e
		}
	}
	return Runtime{
		Getenv: env,
		AWS: AWS{
			Region:      env("AWS_REGION"),
			Credentials: credentials.NewStaticCredentialsProvider(env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")),
			// The SDK's default client, made here so that the warm-up and the SDK clients
			// share its connections.
			HTTPClient: awshttp.NewBuildableClient(),
			Endpoints:  endpoints,
			Warm:       true,
		},
	}
}

// Start builds a function from the Lambda environment and hands its handler to the Lambda
// runtime. A function that cannot be built fails its cold start, which Lambda reports and
// retries, rather than answer requests.
func Start[H any](build func(context.Context, Runtime) (H, error)) {
	h, err := build(context.Background(), FromLambda())
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("cold start failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
	lambda.Start(h)
}

// App is what the functions that serve tokens and accounts share: their settings, the store,
// the service over it and the logger.
type App struct {
	Settings config.Settings
	Store    *dynamo.Store
	Service  *sa.Service
	Log      *slog.Logger
}

// Secrets says which secrets a function reads; each is read only by the functions that need
// it, as their IAM roles in template.yaml allow.
type Secrets uint8

const (
	// Peppers: the function hashes tokens (the authorizer, generate), reading PEPPER_SECRET_ID.
	Peppers Secrets = 1 << iota
	// Cursors: the function signs pagination cursors (list), reading CURSOR_SECRET_ID.
	Cursors
)

// NewApp builds the App from a runtime, reading the secrets the function needs once, so a
// cold start with an unreadable or invalid secret fails instead of serving requests it cannot
// answer. Without Peppers, the service refuses to issue or check tokens; without Cursors, the
// store refuses to list.
func NewApp(ctx context.Context, rt Runtime, needs Secrets) (*App, error) {
	s, err := config.Load(rt.Getenv)
	if err != nil {
		return nil, err
	}
	log := s.Logger(rt.Output())
	var peppers sa.Peppers
	if needs&Peppers != 0 {
		if s.PepperSecret == "" {
			return nil, fmt.Errorf("%s is not set", config.EnvPepperSecret)
		}
		if rt.AWS.Warm {
			rt.AWS.warm("dynamodb") // while the secret is read
		}
		src := secrets.NewSecretsManager(rt.AWS.SecretsManager(), s.PepperSecret, secrets.WithLogger(log), secrets.WithClock(rt.Now))
		if _, err := src.Keyring(ctx); err != nil {
			return nil, fmt.Errorf("read pepper secret: %w", err)
		}
		peppers = secrets.Peppers{Source: src}
	}
	store := dynamo.NewUnsigned(rt.AWS.DynamoDB(), s.Table, dynamo.WithClock(rt.Clock()))
	if needs&Cursors != 0 {
		if s.CursorSecret == "" {
			return nil, fmt.Errorf("%s is not set", config.EnvCursorSecret)
		}
		key, err := secrets.ReadKey(ctx, rt.AWS.SecretsManager(), s.CursorSecret)
		if err != nil {
			return nil, fmt.Errorf("read cursor secret: %w", err)
		}
		if store, err = dynamo.New(rt.AWS.DynamoDB(), s.Table, key, dynamo.WithClock(rt.Clock())); err != nil {
			return nil, err
		}
	}
	return &App{
		Settings: s,
		Store:    store,
		Service:  sa.NewService(store, peppers, sa.WithLimits(s.Limits), sa.WithClock(rt.Clock())),
		Log:      log,
	}, nil
}

// Table builds the store and logger of a function that reads and writes the table but never
// lists accounts or handles tokens (the stream consumer, the audit): it needs TABLE_NAME and
// LOG_LEVEL only, and no access to the pepper secret.
func Table(rt Runtime) (*dynamo.Store, *slog.Logger, error) {
	table := rt.Getenv(config.EnvTable)
	if table == "" {
		return nil, nil, fmt.Errorf("%s is not set", config.EnvTable)
	}
	log, err := config.Logger(rt.Getenv, rt.Output())
	if err != nil {
		return nil, nil, err
	}
	return dynamo.NewUnsigned(rt.AWS.DynamoDB(), table, dynamo.WithClock(rt.Clock())), log, nil
}

// Logger is the logger of a function that needs no AWS client.
func Logger(rt Runtime) (*slog.Logger, error) { return config.Logger(rt.Getenv, rt.Output()) }
