package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/authorizer"
)

// ServeHTTP serves the local endpoints and, for everything else, the REST API as API Gateway
// does: route match, TOKEN authorizer, policy evaluation, proxy event, function, response.
func (s *Stack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A page on another site can point its own name at 127.0.0.1 (DNS rebinding): the stack
	// answers only requests addressed to a loopback name.
	if !loopback(r.Host) {
		writeProblem(w, http.StatusForbidden, "the local stack answers only requests to 127.0.0.1, localhost or [::1]")
		return
	}
	if strings.HasPrefix(r.URL.Path, "/local/") {
		s.serveLocal(w, r)
		return
	}
	if s.throttle != nil && !s.throttle.take() {
		s.gatewayResponse(w, "THROTTLED", http.StatusTooManyRequests, `{"message":"Too Many Requests"}`)
		return
	}
	rt, params := s.match(r.Method, r.URL.Path)
	if rt == nil {
		// REST APIs answer an unknown path, or a method a resource lacks, this way.
		s.gatewayResponse(w, "MISSING_AUTHENTICATION_TOKEN", http.StatusForbidden, `{"message":"Missing Authentication Token"}`)
		return
	}
	now := time.Now()
	rc := events.APIGatewayProxyRequestContext{
		AccountID: AccountID, ResourceID: "local", Stage: s.stage, RequestID: newID(),
		ResourcePath: rt.resource, HTTPMethod: rt.method, APIID: APIID, Protocol: r.Proto,
		RequestTime: now.UTC().Format("02/Jan/2006:15:04:05 -0700"), RequestTimeEpoch: now.UnixMilli(),
		Path: "/" + s.stage + r.URL.Path,
	}
	if s.api.Authorizer != nil && !rt.public {
		ctx, refusal := s.authorize(r)
		if refusal != "" {
			s.refuse(w, refusal)
			return
		}
		rc.Authorizer = ctx
	}
	ev, err := apigw.EventFromHTTP(r, rt.resource, params, rc)
	if errors.Is(err, apigw.ErrPayloadTooLarge) {
		writeJSON(w, http.StatusRequestEntityTooLarge, `{"message":"Request Too Long"}`)
		return
	}
	if err != nil {
		s.gatewayResponse(w, "BAD_REQUEST_BODY", http.StatusBadRequest, `{"message":"Invalid request body"}`)
		return
	}
	// A Lambda invocation shares nothing with the HTTP connection that caused it but its
	// event: its context must not carry the server's values (the listener's address, say).
	ctx, cancel := context.WithTimeout(context.Background(), rt.timeout)
	defer cancel()
	resp, err := invoke(ctx, rt.handler, ev)
	if err != nil {
		// A function error or timeout is a 502 from the Lambda proxy integration.
		s.log.Error("function failed", slog.String("function", rt.function), slog.String("requestId", rc.RequestID),
			slog.String("error", err.Error()))
		writeJSON(w, http.StatusBadGateway, `{"message": "Internal server error"}`)
		return
	}
	apigw.WriteResponse(w, resp)
}

// loopback reports whether a Host header names this machine's loopback interface.
func loopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// match finds the route for a request: literal segments must be equal, {param} segments
// match any one non-empty segment.
func (s *Stack) match(method, path string) (*route, map[string]string) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i := range s.routes {
		rt := &s.routes[i]
		if rt.method != method || len(rt.segments) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for j, want := range rt.segments {
			if strings.HasPrefix(want, "{") && strings.HasSuffix(want, "}") {
				if segs[j] == "" {
					ok = false
					break
				}
				params[want[1:len(want)-1]] = segs[j]
			} else if want != segs[j] {
				ok = false
				break
			}
		}
		if ok {
			return rt, params
		}
	}
	return nil, nil
}

type cachedPolicy struct {
	resp    events.APIGatewayCustomAuthorizerResponse
	expires time.Time
}

// authorize runs the TOKEN authorizer as API Gateway does and returns the context to pass to
// the function, or the Gateway Response that refuses the request.
func (s *Stack) authorize(r *http.Request) (map[string]any, string) {
	header := r.Header.Get(s.api.Authorizer.Header)
	if header == "" {
		return nil, "UNAUTHORIZED" // API Gateway refuses a missing identity source itself
	}
	methodArn := fmt.Sprintf("arn:aws:execute-api:%s:%s:%s/%s/%s/%s", Region, AccountID, APIID, s.stage, r.Method,
		strings.TrimPrefix(r.URL.Path, "/"))
	var resp events.APIGatewayCustomAuthorizerResponse
	if c, ok := s.authCache.Load(header); ok && time.Now().Before(c.(cachedPolicy).expires) {
		resp = c.(cachedPolicy).resp
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		var err error
		resp, err = invoke(ctx, s.authorizer, events.APIGatewayCustomAuthorizerRequest{
			Type: "TOKEN", AuthorizationToken: header, MethodArn: methodArn,
		})
		switch {
		case err != nil && err.Error() == "Unauthorized":
			return nil, "UNAUTHORIZED"
		case err != nil:
			s.log.Error("authorizer failed", slog.String("error", err.Error()))
			return nil, "AUTHORIZER_FAILURE"
		}
		if s.authTTL > 0 {
			s.authCache.Store(header, cachedPolicy{resp, time.Now().Add(s.authTTL)})
		}
	}
	if !authorizer.Allows(resp.PolicyDocument, methodArn) {
		return nil, "ACCESS_DENIED"
	}
	ctx := map[string]any{"principalId": resp.PrincipalID}
	for k, v := range resp.Context {
		ctx[k] = v
	}
	return ctx, ""
}

// refuse writes the Gateway Response of an authorizer refusal.
func (s *Stack) refuse(w http.ResponseWriter, kind string) {
	switch kind {
	case "UNAUTHORIZED":
		s.gatewayResponse(w, kind, http.StatusUnauthorized, `{"message":"Unauthorized"}`)
	case "ACCESS_DENIED":
		s.gatewayResponse(w, kind, http.StatusForbidden, `{"message":"User is not authorized to access this resource"}`)
	default:
		s.gatewayResponse(w, kind, http.StatusInternalServerError, `{"message":null}`)
	}
}

// gatewayResponse writes the template's Gateway Response of a kind, else its DEFAULT_4XX or
// DEFAULT_5XX, else API Gateway's built-in answer.
func (s *Stack) gatewayResponse(w http.ResponseWriter, kind string, status int, body string) {
	gr, ok := s.responses[kind]
	if !ok {
		class := "DEFAULT_4XX"
		if status >= 500 {
			class = "DEFAULT_5XX"
		}
		gr, ok = s.responses[class]
	}
	if ok {
		if gr.StatusCode != 0 {
			status = gr.StatusCode
		}
		if t, ok := gr.Templates["application/json"]; ok {
			body = t
		}
		for h, v := range gr.Headers {
			w.Header().Set(h, v)
		}
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// invoke calls a function as Lambda would: a panic is a failed invocation, not a crash.
func invoke[In, Out any](ctx context.Context, h func(context.Context, In) (Out, error), in In) (out Out, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("function panicked: %v", p)
		}
	}()
	return h(ctx, in)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
