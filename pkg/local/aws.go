package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/dynamolocal"
	"github.com/opentrace/service-accounts/pkg/iam"
	"github.com/opentrace/service-accounts/pkg/secretslocal"
	"github.com/opentrace/service-accounts/pkg/template"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// AWS is the stack's AWS: DynamoDB (embedded, with its stream, or at DynamoDBEndpoint),
// Secrets Manager holding the pepper, and the IAM check every function's calls go through.
type AWS struct {
	Stream *Stream // the embedded table's stream; nil on another DynamoDB

	table       string
	keys        []string // the table's key attributes, partition key first
	streamARN   string
	admin       *dynamodb.Client
	secrets     *secretslocal.Server
	secretARNs  map[string]string // by the template's logical id
	env         *iam.Environment
	endpoints   map[string]string
	region      string
	credentials aws.CredentialsProvider
	transport   http.RoundTripper // reaches the endpoints: in process, or over the network
}

// In-process endpoints: requests to these hosts never leave the process.
const (
	dynamoDBHost       = "dynamodb.local"
	secretsManagerHost = "secretsmanager.local"
)

func newAWS(ctx context.Context, tpl *template.Template, tableID string, opts Options, log *slog.Logger) (*AWS, error) {
	table := opts.TableName
	if table == "" {
		table = TableName
	}
	def, err := tpl.Table(tableID, table)
	if err != nil {
		return nil, err
	}
	a := &AWS{table: table, endpoints: map[string]string{}, region: Region,
		credentials: credentials.NewStaticCredentialsProvider("local", "local", "")}
	for _, k := range def.Input.KeySchema {
		a.keys = append(a.keys, aws.ToString(k.AttributeName))
	}
	hosts := map[string]http.Handler{}
	if opts.DynamoDBEndpoint == "" {
		view := ""
		if def.Input.StreamSpecification != nil {
			view = string(def.Input.StreamSpecification.StreamViewType)
		}
		a.Stream = NewStream(dynamolocal.New(), table, a.keys, view, opts.Shards, time.Now)
		hosts[dynamoDBHost] = a.Stream
		a.endpoints["dynamodb"] = "http://" + dynamoDBHost
	} else {
		// Another DynamoDB (moto, LocalStack, AWS): its credentials and region are the usual
		// variables'; an emulator takes any credentials.
		a.endpoints["dynamodb"] = opts.DynamoDBEndpoint
		if id := os.Getenv("AWS_ACCESS_KEY_ID"); id != "" {
			a.credentials = credentials.NewStaticCredentialsProvider(id, os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN"))
		}
		for _, v := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
			if r := os.Getenv(v); r != "" {
				a.region = r
				break
			}
		}
	}
	a.secrets = secretslocal.New(Region, AccountID)
	hosts[secretsManagerHost] = a.secrets
	a.endpoints["secretsmanager"] = "http://" + secretsManagerHost
	a.transport = hostRouter{hosts: hosts, next: http.DefaultTransport}
	a.admin = dynamodb.New(dynamodb.Options{Region: a.region, Credentials: a.credentials,
		HTTPClient: &http.Client{Transport: a.transport}, BaseEndpoint: aws.String(a.endpoints["dynamodb"])})
	if err := a.ensureTable(ctx, def, log); err != nil {
		return nil, err
	}

	// The secrets: each generated as CloudFormation generates it from the template.
	a.secretARNs = map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(tpl.Resources)) {
		if tpl.Resources[id].Type != "AWS::SecretsManager::Secret" {
			continue
		}
		gen, _ := tpl.Resources[id].Properties["GenerateSecretString"].(map[string]any)
		spec, err := secretslocal.ParseGenerate(gen)
		if err != nil {
			return nil, fmt.Errorf("template: %s: %w", id, err)
		}
		value, err := spec.Generate(rand.Reader)
		if err != nil {
			return nil, err
		}
		a.secretARNs[id] = a.secrets.Put(id, value)
	}
	a.env = &iam.Environment{Region: Region, Account: AccountID,
		PartitionKeys: map[string]string{table: a.keys[0]}, Secrets: a.secrets.ARNs()}
	return a, nil
}

// ensureTable creates the table from the template when the DynamoDB does not hold it yet, with
// its time to live, and learns its stream.
func (a *AWS) ensureTable(ctx context.Context, def template.Table, log *slog.Logger) error {
	out, err := a.admin.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(a.table)})
	if _, missing := errors.AsType[*types.ResourceNotFoundException](err); missing {
		if _, err := a.admin.CreateTable(ctx, def.Input); err != nil {
			return fmt.Errorf("create table %s: %w", a.table, err)
		}
		if a.Stream == nil {
			log.Info("created the table from the template", slog.String("table", a.table), slog.String("endpoint", a.endpoints["dynamodb"]))
			waiter := dynamodb.NewTableExistsWaiter(a.admin, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
			if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(a.table)}, time.Minute); err != nil {
				return fmt.Errorf("table %s did not become active: %w", a.table, err)
			}
		}
		if def.TTLAttribute != "" {
			if _, err := a.admin.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(a.table),
				TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(def.TTLAttribute), Enabled: aws.Bool(true)}}); err != nil {
				return fmt.Errorf("enable time to live on %s: %w", a.table, err)
			}
		}
		out, err = a.admin.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(a.table)})
	}
	if err != nil {
		return fmt.Errorf("describe table %s: %w", a.table, err)
	}
	if a.Stream != nil {
		a.streamARN = a.Stream.ARN()
	} else if out.Table != nil {
		a.streamARN = aws.ToString(out.Table.LatestStreamArn)
	}
	return nil
}

// Resolver gives the template's intrinsic functions their values on this machine: the
// parameters (defaults where params names none), the table's name and ARNs, the secret's ARN,
// and the ARNs of the other resources in this stack's account and region.
func Resolver(tpl *template.Template, params map[string]string, table, streamARN string, secretARNs map[string]string) template.Resolver {
	r := template.Resolver{
		Params: params, Refs: map[string]string{}, Attrs: map[string]string{},
		Pseudo: map[string]string{"AWS::Region": Region, "AWS::AccountId": AccountID, "AWS::Partition": "aws",
			"AWS::StackName": "local", "AWS::URLSuffix": "amazonaws.com"},
	}
	for id, res := range tpl.Resources {
		switch res.Type {
		case "AWS::DynamoDB::Table":
			r.Refs[id] = table
			r.Attrs[id+".Arn"] = fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", Region, AccountID, table)
			r.Attrs[id+".StreamArn"] = streamARN
		case "AWS::SecretsManager::Secret":
			r.Refs[id] = secretARNs[id]
		case "AWS::Serverless::Function":
			r.Attrs[id+".Arn"] = fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", Region, AccountID, id)
		case "AWS::SQS::Queue":
			r.Attrs[id+".Arn"] = fmt.Sprintf("arn:aws:sqs:%s:%s:%s", Region, AccountID, id)
		case "AWS::Serverless::Api", "AWS::Logs::LogGroup":
			r.Refs[id] = id
		}
	}
	return r
}

// runtime is a function's Lambda world on this stack: its environment as the template sets
// it, and AWS clients that go through the IAM check of its role as SAM expands it.
func (a *AWS) runtime(tpl *template.Template, f template.Function, r template.Resolver, opts Options) (wire.Runtime, error) {
	env, err := tpl.Env(f, r)
	if err != nil {
		return wire.Runtime{}, err
	}
	role, err := iam.Build(tpl, f, r, AccountID)
	if err != nil {
		return wire.Runtime{}, err
	}
	next := a.transport
	if opts.Transport != nil {
		next = opts.Transport(a.transport)
	}
	logs := &taggedWriter{w: opts.Logs, function: f.LogicalID}
	check := &iam.Transport{Role: role, Env: a.env, Next: next, Log: slog.New(slog.NewJSONHandler(logs, nil))}
	clients := wire.AWS{Region: a.region, Credentials: a.credentials, HTTPClient: &http.Client{Transport: check}, Endpoints: a.endpoints}
	if opts.RetryBackoff > 0 {
		clients.Retryer = func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = opts.RetryBackoff })
		}
	}
	return wire.Runtime{
		Getenv: func(k string) string { return env[k] },
		AWS:    clients,
		Now:    opts.Now,
		Stdout: logs,
	}, nil
}

// hostRouter serves requests to in-process endpoints with their handlers, and sends the rest
// over the network.
type hostRouter struct {
	hosts map[string]http.Handler
	next  http.RoundTripper
}

func (h hostRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	handler, ok := h.hosts[r.URL.Host]
	if !ok {
		return h.next.RoundTrip(r)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// taggedWriter writes a function's JSON log lines with the function's name, as its own log
// group would hold them in AWS; writers of all functions share the stack's output.
type taggedWriter struct {
	w        io.Writer
	function string
}

var logMu sync.Mutex

func (t *taggedWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	if bytes.HasPrefix(p, []byte("{")) {
		if _, err := fmt.Fprintf(t.w, `{"function":%q,`, t.function); err != nil {
			return 0, err
		}
		if _, err := t.w.Write(p[1:]); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return t.w.Write(p)
}
