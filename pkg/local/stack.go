package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/config"
	"github.com/opentrace/service-accounts/pkg/localidp"
	"github.com/opentrace/service-accounts/pkg/template"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// Local names of the template's resources.
const (
	TableName = "opentrace-service-accounts-local"
)

// Options configure a stack.
type Options struct {
	Template string            // path of template.yaml
	Params   map[string]string // template parameter values, as PARAMETER_OVERRIDES gives them
	// Logs receives the stack's and every function's JSON log lines and embedded metrics
	// (each function's tagged with its name); default os.Stderr.
	Logs io.Writer
	// DynamoDBEndpoint runs the stack on that DynamoDB instead of the embedded one, its stream
	// read through the Streams API at DynamoDBStreamsEndpoint (default the same endpoint).
	DynamoDBEndpoint, DynamoDBStreamsEndpoint string
	TableName                                 string           // default TableName
	Shards                                    int              // embedded stream shards; default 4
	Now                                       func() time.Time // the functions' clock; default time.Now
	// RetryBackoff caps the back-off of the functions' SDK retries (as many as the SDK's
	// standard retries make); 0 keeps the SDK's, as in AWS. Tests that inject failures set it
	// low, so they do not wait for seconds.
	RetryBackoff time.Duration
	// Test seams. Transport wraps the transport of every function's AWS calls (after the IAM
	// check), to count them or inject faults; Decorate wraps a built handler.
	Transport func(http.RoundTripper) http.RoundTripper
	Decorate  func(function string, handler any) any
}

// Stack is the running system.
type Stack struct {
	URL string
	// DB is a DynamoDB client with full access to the stack's table, for tests and tools; the
	// functions have their own, limited by their IAM roles.
	DB    *dynamodb.Client
	Table string
	AWS   *AWS

	opts       Options
	log        *slog.Logger
	tpl        *template.Template
	api        template.API
	stage      string
	routes     []route
	authorizer wire.AuthorizerHandler
	authTTL    time.Duration
	authCache  sync.Map // header value → cachedPolicy
	throttle   *bucket  // nil: the stage is not throttled
	responses  map[string]template.GatewayResponse
	subs       map[string]*Subscription
	schedules  map[string]ScheduleHandler
	functions  map[string]any // built handlers by logical id
	envs       map[string]wire.Runtime
	idp        *localidp.Issuer
	server     *http.Server
	ctx        context.Context
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
	public   bool // Auth: {Authorizer: NONE}: API Gateway calls no authorizer
}

// Start builds the stack from the template and serves it on ln until ctx ends or Close.
func Start(ctx context.Context, ln net.Listener, opts Options) (*Stack, error) {
	s, err := New(ctx, "http://"+ln.Addr().String(), opts)
	if err != nil {
		return nil, err
	}
	s.Serve(ln)
	return s, nil
}

// New builds the stack that will answer at url: its AWS side, every function of the template
// through its constructor, routes, stream subscriptions and schedules. It serves nothing until
// Serve.
func New(ctx context.Context, url string, opts Options) (*Stack, error) {
	tpl, err := template.Load(opts.Template)
	if err != nil {
		return nil, err
	}
	if err := tpl.Check(); err != nil {
		return nil, err
	}
	if err := tpl.CheckParams(opts.Params); err != nil {
		return nil, err
	}
	if opts.Logs == nil {
		opts.Logs = os.Stderr
	}
	if opts.Shards == 0 {
		opts.Shards = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Stack{
		URL: url, opts: opts, log: slog.New(slog.NewJSONHandler(opts.Logs, nil)), tpl: tpl,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		subs: map[string]*Subscription{}, schedules: map[string]ScheduleHandler{},
		functions: map[string]any{}, envs: map[string]wire.Runtime{},
	}
	if err := s.build(ctx); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Serve answers HTTP on ln until Close.
func (s *Stack) Serve(ln net.Listener) {
	s.server = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return s.ctx }}
	go func() {
		defer close(s.done)
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("local stack stopped", slog.String("error", err.Error()))
		}
	}()
}

// Close stops serving, waiting briefly for requests in flight, and stops the stream and the
// schedules.
func (s *Stack) Close() error {
	var err error
	if s.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.server.Shutdown(ctx)
	}
	s.cancel()
	if s.server != nil {
		<-s.done
	}
	return err
}

func (s *Stack) build(ctx context.Context) error {
	tableID, err := s.single("AWS::DynamoDB::Table")
	if err != nil {
		return err
	}
	if s.AWS, err = newAWS(ctx, s.tpl, tableID, s.opts, s.log); err != nil {
		return err
	}
	s.DB, s.Table = s.AWS.admin, s.AWS.table

	// Identity: the local issuer, verified by the authorizer through its JWKS URL. Its tokens
	// name this stack's origin as their authorized party, as the provider's session tokens
	// name the dashboard's, in the shape the template's parameter says.
	params := map[string]string{
		"IdentityIssuer": s.URL + "/local", "IdentityJwksUrl": s.URL + "/local/jwks.json",
		"IdentityAudience": "", "IdentityAuthorizedParties": s.URL,
	}
	maps.Copy(params, s.opts.Params)
	resolver := Resolver(s.tpl, params, s.AWS.table, s.AWS.streamARN, s.AWS.secretARNs)
	if err := s.tpl.CheckRules(resolver); err != nil {
		return err
	}
	if s.idp, err = localidp.New(params["IdentityIssuer"]); err != nil {
		return err
	}
	if s.idp.Claims, err = s.tpl.Resolve(map[string]any{"Ref": "IdentitySessionClaims"}, resolver); err != nil {
		return err
	}
	if parties := config.List(params["IdentityAuthorizedParties"]); len(parties) > 0 {
		s.idp.AuthorizedParty = parties[0]
	}

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
		rt, err := s.AWS.runtime(s.tpl, f, resolver, s.opts)
		if err != nil {
			return fmt.Errorf("local stack: function %s: %w", id, err)
		}
		h, err := construct(ctx, id, rt)
		if err != nil {
			return fmt.Errorf("local stack: function %s: %w", id, err)
		}
		if s.opts.Decorate != nil {
			h = s.opts.Decorate(id, h)
		}
		s.functions[id], s.envs[id] = h, rt
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
		a, ok := h.(wire.AuthorizerHandler)
		if !ok {
			return fmt.Errorf("local stack: %s is the authorizer but its constructor gives %T", f.LogicalID, h)
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
	if err := onlyKeys(e.Properties, "RestApiId", "Path", "Method", "Auth"); err != nil {
		return err
	}
	public := false
	if auth, ok := e.Properties["Auth"].(map[string]any); ok {
		if err := onlyKeys(auth, "Authorizer"); err != nil {
			return fmt.Errorf("property Auth: %w", err)
		}
		if auth["Authorizer"] != "NONE" {
			return fmt.Errorf("property Auth.Authorizer %v: the local stack knows only the API's default and NONE", auth["Authorizer"])
		}
		public = true
	}
	if ref, _ := e.Properties["RestApiId"].(map[string]any); ref["Ref"] != apiID {
		return fmt.Errorf("route is not on the API %s", apiID)
	}
	handler, ok := h.(apigw.Handler)
	if !ok {
		return fmt.Errorf("an API route needs an apigw.Handler, the constructor gives %T", h)
	}
	path, _ := e.Properties["Path"].(string)
	method, _ := e.Properties["Method"].(string)
	s.routes = append(s.routes, route{
		method: strings.ToUpper(method), resource: path, segments: strings.Split(strings.Trim(path, "/"), "/"),
		function: f.LogicalID, handler: handler, timeout: timeout, public: public,
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

func onlyKeys(m map[string]any, allowed ...string) error {
	for k := range m {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("property %s is not supported by the local stack", k)
		}
	}
	return nil
}

// Function returns the handler the stack built for a function of the template, by logical id.
func (s *Stack) Function(id string) any { return s.functions[id] }

// AdminRuntime is a function's runtime with clients that bypass the IAM check, for tests and
// tools that set up what the function then works on.
func (s *Stack) AdminRuntime(id string) wire.Runtime {
	rt := s.envs[id]
	rt.AWS.HTTPClient = &http.Client{Transport: s.AWS.transport}
	return rt
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
