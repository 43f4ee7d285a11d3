// Package mcpserver is the MCP server that stands where the product's MCP backend sits: what
// MCP clients such as Claude Code reach at POST /mcp/v1 with a service-account token, so that
// the MCP configuration in the product documentation works end to end against this system.
//
// It speaks streamable HTTP through the official Go SDK, stateless and with JSON responses:
// each Lambda invocation is one HTTP request and one buffered response, so there is no
// session to keep and no stream to hold open. It trusts one thing about the caller, the
// identity apigw.HTTPHandler put in the request context from the authorizer's verdict.
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

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/opentrace/service-accounts/pkg/apigw"
)

// ServerName is the name the server gives MCP clients at initialization; it matches the
// "opentrace" entry of the documented MCP configuration.
const ServerName = "opentrace"

// ToolWhoami is the name of the tool that reports the calling credential.
const ToolWhoami = "whoami"

// Identity is the structured output of the whoami tool. Fields of the other kind of principal
// are omitted, and so are the expiry of a token that never expires and the last use of one
// never used before.
type Identity struct {
	PrincipalType      string `json:"principalType" jsonschema:"service_account for an API token, user for a dashboard user"`
	OrgID              string `json:"orgId" jsonschema:"the OpenTrace organisation the credential belongs to"`
	ServiceAccountID   string `json:"serviceAccountId,omitempty" jsonschema:"the service account that owns the token"`
	ServiceAccountName string `json:"serviceAccountName,omitempty" jsonschema:"the name of that service account"`
	TokenID            string `json:"tokenId,omitempty" jsonschema:"the token in use (an id, never the secret)"`
	ExpiresAt          string `json:"expiresAt,omitempty" jsonschema:"when the token expires, RFC 3339 UTC; absent if it never expires"`
	LastUsedAt         string `json:"lastUsedAt,omitempty" jsonschema:"when the token was last used before, RFC 3339 UTC; absent if never"`
	UserID             string `json:"userId,omitempty" jsonschema:"the dashboard user"`
	Role               string `json:"role,omitempty" jsonschema:"the user's role in the organisation: admin or member"`
}

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
//   - one whose context carries no caller (see apigw.CallerFromContext) is refused with 401:
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
		c, ok := apigw.CallerFromContext(r.Context())
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, unauthorized)
			log.LogAttrs(r.Context(), slog.LevelError, "request", slog.String("method", r.Method),
				slog.String("route", r.URL.Path), slog.Int("status", http.StatusUnauthorized),
				slog.String("error", "no caller in the request context: the MCP server is not behind the authorizer"))
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		if refused := refuse(r, opts); refused != nil {
			writeRPCError(sw, refused.status, refused.message)
		} else {
			streamable.ServeHTTP(sw, r)
		}
		level := slog.LevelInfo
		if sw.status >= 500 {
			level = slog.LevelError
		}
		log.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method),
			slog.String("route", r.URL.Path),
			slog.Int("status", sw.status),
			slog.String("orgId", c.OrgID),
			slog.String("principal", c.Subject),
			slog.Int64("durationMs", time.Since(start).Milliseconds()),
		)
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
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &openWorld},
	}, whoami)
	return s
}

// whoami answers from the caller in ctx, which the authorizer established; it reads no store.
func whoami(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, Identity, error) {
	c, ok := apigw.CallerFromContext(ctx)
	if !ok {
		// Handler refuses such requests, so reaching here means the server was wired without it.
		return nil, Identity{}, errors.New("no authenticated caller")
	}
	if c.PrincipalType == apigw.PrincipalServiceAccount {
		return nil, Identity{
			PrincipalType: c.PrincipalType, OrgID: c.OrgID, ServiceAccountID: c.ServiceAccountID,
			ServiceAccountName: c.ServiceAccountName, TokenID: c.TokenID,
			ExpiresAt: c.ExpiresAt, LastUsedAt: c.LastUsedAt,
		}, nil
	}
	return nil, Identity{PrincipalType: c.PrincipalType, OrgID: c.OrgID, UserID: c.Subject, Role: c.Role}, nil
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
