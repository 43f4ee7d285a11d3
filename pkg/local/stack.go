package local

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/truora/minidyn/server"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/localidp"
	"github.com/opentrace/service-accounts/pkg/secrets"
	"github.com/opentrace/service-accounts/pkg/template"
)

// Local names of the template's resources.
const (
	TableName      = "opentrace-service-accounts-local"
	PepperSecretID = "local/pepper"
)

// Options configure a stack.
type Options struct {
	Template  string            // path of template.yaml
	Params    map[string]string // template parameter overrides
	Log       *slog.Logger      // the stack's and every function's log
	Functions map[string]Factory
	Shards    int       // stream shards; default 4
	Metrics   io.Writer // embedded-metric-format lines (stdout in Lambda); default discarded
}

// Stack is the running system.
type Stack struct {
	URL     string
	DB      *dynamodb.Client
	Minidyn *server.Server
	Stream  *Stream

	log        *slog.Logger
	tpl        *template.Template
	api        template.API
	stage      string
	routes     []route
	authorizer AuthorizerHandler
	authTTL    time.Duration
	authCache  sync.Map // header value → cachedPolicy
	throttle   *bucket  // nil: the stage is not throttled
	responses  map[string]template.GatewayResponse
	subs       map[string]*Subscription
	schedules  map[string]ScheduleHandler
	idp        *localidp.Issuer
	server     *http.Server
	cancel     context.CancelFunc
	done       chan struct{}
}

type route struct {
	method   string
	resource string
	segments []string
	function string
	handler  apigw.Handler
	timeout  time.Duration
}

// Start builds the stack from the template and serves it on ln until ctx ends or Close.
func Start(ctx context.Context, ln net.Listener, opts Options) (*Stack, error) {
	tpl, err := template.Load(opts.Template)
	if err != nil {
		return nil, err
	}
	if err := tpl.Check(); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Functions == nil {
		opts.Functions = Registry
	}
	if opts.Shards == 0 {
		opts.Shards = 4
	}
	if opts.Metrics == nil {
		opts.Metrics = io.Discard
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Stack{
		URL: "http://" + ln.Addr().String(), log: opts.Log, tpl: tpl, cancel: cancel, done: make(chan struct{}),
		subs: map[string]*Subscription{}, schedules: map[string]ScheduleHandler{},
	}
	if err := s.build(ctx, opts); err != nil {
		cancel()
		return nil, err
	}
	s.server = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		defer close(s.done)
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("local stack stopped", slog.String("error", err.Error()))
		}
	}()
	return s, nil
}

// Close stops serving, waiting briefly for requests in flight, and stops the stream and the
// schedules.
func (s *Stack) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.server.Shutdown(ctx)
	s.cancel()
	<-s.done
	return err
}

func (s *Stack) build(ctx context.Context, opts Options) error {
	// DynamoDB: minidyn with the template's table, behind the stream stand-in, reached by the
	// real SDK through an in-process transport.
	tableID, err := s.single("AWS::DynamoDB::Table")
	if err != nil {
		return err
	}
	table, err := s.tpl.Table(tableID, TableName)
	if err != nil {
		return err
	}
	s.Minidyn = server.NewServer()
	var keyAttrs []string
	for _, k := range table.Input.KeySchema {
		keyAttrs = append(keyAttrs, aws.ToString(k.AttributeName))
	}
	view := ""
	if table.Input.StreamSpecification != nil {
		view = string(table.Input.StreamSpecification.StreamViewType)
	}
	s.Stream = NewStream(s.Minidyn, TableName, keyAttrs, view, opts.Shards, time.Now)
	s.DB = dynamodb.New(dynamodb.Options{
		Region: Region, BaseEndpoint: aws.String("http://dynamodb.local"),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:  &http.Client{Transport: handlerTransport{s.Stream}},
	})
	if _, err := s.DB.CreateTable(ctx, table.Input); err != nil {
		return fmt.Errorf("create table: %w", err)
	}

	// The pepper: a fresh local secret of the deployed shape.
	raw, err := secrets.Generate(rand.Reader)
	if err != nil {
		return err
	}
	kr, err := secrets.Parse(raw)
	if err != nil {
		return err
	}
	peppers := secrets.StaticKeyring(kr)

	// Identity: the local issuer, verified by the authorizer through its JWKS URL.
	if s.idp, err = localidp.New(s.URL + "/local"); err != nil {
		return err
	}
	params := map[string]string{
		"IdentityIssuer": s.URL + "/local", "IdentityJwksUrl": s.URL + "/local/jwks.json", "IdentityAudience": "",
	}
	maps.Copy(params, opts.Params)
	resolver := s.resolver(params, tableID)

	apiID, err := s.single("AWS::Serverless::Api")
	if err != nil {
		return err
	}
	if s.api, err = s.tpl.API(apiID); err != nil {
		return err
	}
	if s.stage, err = s.tpl.Resolve(s.api.Stage, resolver); err != nil {
		return err
	}
	s.responses = s.api.GatewayResponses
	if s.api.RateLimit != nil {
		rate, err := resolveNumber(s.tpl, s.api.RateLimit, resolver)
		if err != nil {
			return err
		}
		burst, err := resolveNumber(s.tpl, s.api.BurstLimit, resolver)
		if err != nil {
			return err
		}
		s.throttle = newBucket(rate, burst)
	}

	functions, err := s.tpl.Functions()
	if err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(functions)) {
		f := functions[id]
		factory, ok := opts.Functions[id]
		if !ok {
			return fmt.Errorf("local stack: function %s has no local wiring (add it to local.Registry)", id)
		}
		env, err := s.tpl.Env(f, resolver)
		if err != nil {
			return err
		}
		h, err := factory(ctx, Deps{Env: func(k string) string { return env[k] }, DB: s.DB, Peppers: peppers,
			Log: opts.Log.With(slog.String("function", id)), Metrics: opts.Metrics})
		if err != nil {
			return fmt.Errorf("local stack: function %s: %w", id, err)
		}
		if err := s.wire(ctx, f, h, apiID, resolver); err != nil {
			return err
		}
	}
	if s.api.Authorizer != nil {
		if s.authorizer == nil {
			return fmt.Errorf("local stack: the API's authorizer %s is not a function of the template", s.api.Authorizer.Function)
		}
		if s.api.Authorizer.CacheTTL != nil {
			ttl, err := s.tpl.Resolve(s.api.Authorizer.CacheTTL, resolver)
			if err != nil {
				return err
			}
			d, err := time.ParseDuration(ttl + "s")
			if err != nil {
				return fmt.Errorf("local stack: authorizer cache TTL %q: %w", ttl, err)
			}
			s.authTTL = d
		} else {
			s.authTTL = 300 * time.Second // API Gateway's default
		}
	}
	return nil
}

// wire connects one function to its events: routes, the authorizer, the stream, schedules.
func (s *Stack) wire(ctx context.Context, f template.Function, h any, apiID string, r template.Resolver) error {
	if s.api.Authorizer != nil && s.api.Authorizer.Function == f.LogicalID {
		a, ok := h.(AuthorizerHandler)
		if !ok {
			return fmt.Errorf("local stack: %s is the authorizer but its wiring is %T", f.LogicalID, h)
		}
		s.authorizer = a
	}
	timeout := time.Duration(f.Timeout) * time.Second
	if timeout == 0 {
		timeout = 3 * time.Second // Lambda's default
	}
	for _, name := range slices.Sorted(maps.Keys(f.Events)) {
		e := f.Events[name]
		var err error
		switch e.Type {
		case "Api":
			err = s.wireRoute(f, e, h, apiID, timeout)
		case "DynamoDB":
			err = s.wireStream(ctx, f, e, h, r)
		case "Schedule", "ScheduleV2":
			err = s.wireSchedule(ctx, f, e, h, r)
		}
		if err != nil {
			return fmt.Errorf("local stack: function %s event %s: %w", f.LogicalID, name, err)
		}
	}
	return nil
}

func (s *Stack) wireRoute(f template.Function, e template.Event, h any, apiID string, timeout time.Duration) error {
	if err := onlyKeys(e.Properties, "RestApiId", "Path", "Method"); err != nil {
		return err
	}
	if ref, _ := e.Properties["RestApiId"].(map[string]any); ref["Ref"] != apiID {
		return fmt.Errorf("route is not on the API %s", apiID)
	}
	handler, ok := h.(apigw.Handler)
	if !ok {
		return fmt.Errorf("an API route needs an apigw.Handler, the wiring gives %T", h)
	}
	path, _ := e.Properties["Path"].(string)
	method, _ := e.Properties["Method"].(string)
	s.routes = append(s.routes, route{
		method: strings.ToUpper(method), resource: path, segments: strings.Split(strings.Trim(path, "/"), "/"),
		function: f.LogicalID, handler: handler, timeout: timeout,
	})
	return nil
}

func (s *Stack) single(typ string) (string, error) {
	var ids []string
	for id, r := range s.tpl.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("local stack: want exactly one %s, the template has %d", typ, len(ids))
	}
	return ids[0], nil
}

func (s *Stack) resolver(params map[string]string, tableID string) template.Resolver {
	r := template.Resolver{
		Params: params,
		Refs:   map[string]string{tableID: TableName},
		Attrs: map[string]string{
			tableID + ".Arn":       fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", Region, AccountID, TableName),
			tableID + ".StreamArn": s.Stream.ARN(),
		},
		Pseudo: map[string]string{"AWS::Region": Region, "AWS::AccountId": AccountID, "AWS::StackName": "local", "AWS::URLSuffix": "amazonaws.com"},
	}
	for id, res := range s.tpl.Resources {
		switch res.Type {
		case "AWS::SecretsManager::Secret":
			r.Refs[id] = PepperSecretID
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

// handlerTransport serves SDK requests with an in-process handler: no port, no network.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func onlyKeys(m map[string]any, allowed ...string) error {
	for k := range m {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("property %s is not supported by the local stack", k)
		}
	}
	return nil
}

// Subscriptions returns the running stream subscriptions by function.
func (s *Stack) Subscriptions() map[string]*Subscription { return s.subs }

func resolveNumber(tpl *template.Template, v any, r template.Resolver) (float64, error) {
	s, err := tpl.Resolve(v, r)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("local stack: throttling limit %q is not a positive number", s)
	}
	return n, nil
}
