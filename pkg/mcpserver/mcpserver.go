// Package mcpserver is the MCP server that stands where the product's MCP backend sits: what
// MCP clients such as Claude Code reach at POST /mcp/v1 with a service-account token, so that
// the MCP configuration in the product documentation works end to end against this system.
//
// It speaks streamable HTTP through the official Go SDK, stateless and with JSON responses:
// each Lambda invocation is one HTTP request and one buffered response, so there is no
// session to keep and no stream to hold open. It trusts one thing about the caller, the
// principal apigw.HTTPHandler put in the request context from the authorizer's verdict.
package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/opentrace/service-accounts/pkg/reqlog"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// ServerName is the name the server gives MCP clients at initialization; it matches the
// "opentrace" entry of the documented MCP configuration.
const ServerName = "opentrace"

// ToolWhoami is the name of the tool that reports the calling credential.
const ToolWhoami = "whoami"

// unauthorized is the body API Gateway sends with a 401, so a client sees one shape of refusal
// whether the authorizer or this server refused it.
const unauthorized = `{"message":"Unauthorized"}`

// MaxBodyBytes bounds an MCP request: far more than any single JSON-RPC message of these
// tools needs, and little enough that no request can make an invocation work for long.
const MaxBodyBytes = 64 << 10

// Options configure the endpoint.
type Options struct {
	// AllowedOrigins are the origins, besides the API's own, whose pages may call the
	// endpoint from a browser.
	AllowedOrigins []string
}

// Handler returns the MCP endpoint as an http.Handler, logging one line per request with log
// (never a credential) and reporting version to clients. Before the MCP layer sees a request:
//   - one whose context carries no principal (serviceaccount.PrincipalFromContext) is refused
//     with 401:
//     the server is only ever meant to run behind the API's authorizer, and if it is mounted
//     without one it must fail closed;
//   - one from a foreign Origin is refused with 403, as the MCP specification requires of
//     servers against DNS rebinding (no Origin is fine: MCP clients are not browsers);
//   - a body over MaxBodyBytes is refused with 413;
//   - a JSON-RPC batch is refused with 400 and one error (-32600, id null), with nothing in it
//     executed: the SDK would execute every call of a batch of thousands in one invocation.
func Handler(log *slog.Logger, version string, opts Options) http.Handler {
	// One server for every request: its tools are fixed, and in stateless mode the SDK gives
	// each HTTP request its own session whose context carries that request's values, so the
	// whoami tool reads the caller of the very request it answers.
	server := newServer(version)
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: log})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		line := reqlog.Request{Method: r.Method, Route: r.URL.Path, Start: start}
		p, ok := sa.PrincipalFromContext(r.Context())
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, unauthorized)
			// A failure of the deployment, not of the client: the server is not behind the
			// authorizer.
			line.Status = http.StatusUnauthorized
			line.Err = sa.Internal(errors.New("no principal in the request context: the MCP server is not behind the authorizer"))
			reqlog.Log(r.Context(), log, line)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		if refused := refuse(r, opts); refused != nil {
			writeRPCError(sw, refused.status, refused.message)
		} else {
			streamable.ServeHTTP(sw, r)
		}
		line.Status, line.Caller = sw.status, p
		reqlog.Log(r.Context(), log, line)
	})
}

type refusal struct {
	status  int
	message string
}

// refuse checks a request's origin, size and shape before the SDK reads it, leaving the body
// as it was for the SDK.
func refuse(r *http.Request, opts Options) *refusal {
	if origin := r.Header.Get("Origin"); origin != "" && !allowedOrigin(r, origin, opts.AllowedOrigins) {
		return &refusal{http.StatusForbidden, "Forbidden: requests from origin " + strconv.Quote(origin) + " are not accepted."}
	}
	if r.Body == nil {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return &refusal{http.StatusBadRequest, "The request body could not be read."}
	}
	if len(body) > MaxBodyBytes {
		return &refusal{http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", MaxBodyBytes)}
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
		return &refusal{http.StatusBadRequest, "JSON-RPC batches are not supported: send one message per request."}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}

// allowedOrigin reports whether origin is the API's own (the scheme and host the request came
// to) or one of allowed.
func allowedOrigin(r *http.Request, origin string, allowed []string) bool {
	scheme := r.Header.Get("X-Forwarded-Proto")
	if scheme == "" {
		scheme = "https"
	}
	return origin == scheme+"://"+r.Host || slices.Contains(allowed, origin)
}

// writeRPCError answers with one JSON-RPC error that answers no request (id null): Invalid
// Request, the code JSON-RPC gives a message the server will not process.
func writeRPCError(w http.ResponseWriter, status int, message string) {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": -32600, "message": message}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newServer(version string) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: ServerName, Title: "OpenTrace", Version: version},
		&mcp.ServerOptions{
			Instructions: "OpenTrace's MCP server. Call the whoami tool to check that your MCP " +
				"configuration reaches OpenTrace with the token you expect.",
			// Only what is offered: the default would also advertise logging, which a
			// stateless server cannot honour across requests.
			Capabilities: &mcp.ServerCapabilities{},
		})
	openWorld := false
	mcp.AddTool(s, &mcp.Tool{
		Name:  ToolWhoami,
		Title: "Who am I",
		Description: "Shows which OpenTrace credential this MCP connection uses: the organisation, " +
			"the service account and token (or the dashboard user and role), when the token expires " +
			"and when it was last used. Use it to check your MCP setup: that the server is reachable " +
			"and that it authenticates with the token you meant to configure.",
		Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &openWorld},
		OutputSchema: whoamiSchema(),
	}, whoami)
	return s
}

// whoami answers from the principal in ctx, which the authorizer established; it reads no
// store. Its output is GET /v1/whoami's body.
func whoami(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
	p, ok := sa.PrincipalFromContext(ctx)
	if !ok {
		// Handler refuses such requests, so reaching here means the server was wired without it.
		return nil, nil, errors.New("no authenticated principal")
	}
	return nil, p.Whoami(), nil
}

// whoamiSchema is the whoami tool's output schema: a service account's identity or a user's.
func whoamiSchema() *jsonschema.Schema {
	token, err1 := jsonschema.For[sa.ServiceAccountWhoami](nil)
	user, err2 := jsonschema.For[sa.UserWhoami](nil)
	if err := errors.Join(err1, err2); err != nil {
		panic(err) // the types are fixed: a test calls this
	}
	return &jsonschema.Schema{Type: "object", OneOf: []*jsonschema.Schema{token, user}}
}

// statusWriter records the status for the request log. Unwrap lets http.ResponseController
// reach the writer underneath, which the SDK uses to flush.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
