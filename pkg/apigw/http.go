package apigw

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// MaxHTTPBodyBytes bounds the request body HTTPHandler hands to an http.Handler. It is larger
// than MaxBodyBytes because it serves protocols whose requests we do not shape ourselves (MCP's
// JSON-RPC batches), and far below what a Lambda invocation may carry, so that one request
// cannot make the function hold several copies of a large body in memory.
const MaxHTTPBodyBytes = 1 << 20

// MaxPayloadBytes is API Gateway's limit on a request payload. EventFromHTTP refuses larger
// bodies, as API Gateway does before any authorizer or function runs.
const MaxPayloadBytes = 10 << 20

// ErrPayloadTooLarge is returned by EventFromHTTP for a body over MaxPayloadBytes; an emulator
// answers it with 413, as API Gateway does.
var ErrPayloadTooLarge = errors.New("apigw: request payload is larger than API Gateway accepts")

// HTTPHandler adapts h, a plain net/http handler, to a Lambda handler for REST proxy events.
// Each event becomes an *http.Request whose context carries the principal the authorizer
// established (see serviceaccount.PrincipalFromContext); h's response is buffered and returned as the proxy
// response, its body base64-encoded unless it is UTF-8 text or JSON.
//
// A request whose authorizer context is missing or incomplete gets a 500 problem (EINTERNAL)
// and never reaches h: API Gateway invokes the function only after the authorizer allowed
// the request, so this is a deployment bug, not the client's. A body over MaxHTTPBodyBytes,
// or a base64 body that does not decode, gets a 400 problem (EINVALID naming "body"), as
// Decode answers for the management routes.
func HTTPHandler(h http.Handler) Handler {
	return func(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		p, err := PrincipalFrom(req.RequestContext)
		if err != nil {
			return Respond(0, nil, sa.Internal(err)), nil
		}
		r, err := httpRequest(sa.NewContextWithPrincipal(ctx, p), req)
		if err != nil {
			return Respond(0, nil, err), nil
		}
		w := &responseBuffer{header: http.Header{}}
		h.ServeHTTP(w, r)
		return w.response(), nil
	}
}

// httpRequest builds the server-side request net/http would have built for the same call.
// Errors: EINVALID for a body that is too large or not valid base64.
func httpRequest(ctx context.Context, req events.APIGatewayProxyRequest) (*http.Request, error) {
	body, err := eventBody(req)
	if err != nil {
		return nil, err
	}
	header := http.Header{}
	for k, vs := range req.MultiValueHeaders {
		for _, v := range vs {
			header.Add(k, v)
		}
	}
	// API Gateway fills both maps; a hand-written event may fill only one.
	for k, v := range req.Headers {
		if len(header.Values(k)) == 0 {
			header.Set(k, v)
		}
	}
	query := url.Values{}
	for k, vs := range req.MultiValueQueryStringParameters {
		query[k] = append(query[k], vs...)
	}
	for k, v := range req.QueryStringParameters {
		if _, ok := query[k]; !ok {
			query.Set(k, v)
		}
	}
	// net/http moves Host out of the header map; handlers read r.Host.
	host := header.Get("Host")
	header.Del("Host")
	if host == "" {
		host = req.RequestContext.DomainName
	}
	proto := req.RequestContext.Protocol
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		proto, major, minor = "HTTP/1.1", 1, 1
	}
	u := &url.URL{Path: req.Path, RawQuery: query.Encode()}
	r := &http.Request{
		Method:        req.HTTPMethod,
		URL:           u,
		Proto:         proto,
		ProtoMajor:    major,
		ProtoMinor:    minor,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          host,
		RemoteAddr:    req.RequestContext.Identity.SourceIP,
		RequestURI:    u.RequestURI(),
	}
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	return r.WithContext(ctx), nil
}

// eventBody returns the raw bytes of the event's body, refusing more than MaxHTTPBodyBytes.
func eventBody(req events.APIGatewayProxyRequest) ([]byte, error) {
	if !req.IsBase64Encoded {
		if len(req.Body) > MaxHTTPBodyBytes {
			return nil, httpBodyTooLarge()
		}
		return []byte(req.Body), nil
	}
	// Refuse before decoding, so an oversized body is never copied.
	if base64.StdEncoding.DecodedLen(len(req.Body)) > MaxHTTPBodyBytes+2 {
		return nil, httpBodyTooLarge()
	}
	b, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return nil, invalidBody("The body is not valid base64.")
	}
	if len(b) > MaxHTTPBodyBytes {
		return nil, httpBodyTooLarge()
	}
	return b, nil
}

func httpBodyTooLarge() error {
	return invalidBody("The body is larger than 1 MiB.")
}

// responseBuffer is an in-memory http.ResponseWriter with net/http's semantics where a
// handler can tell: headers are fixed by the first WriteHeader or Write, and a missing
// Content-Type is sniffed from the body.
type responseBuffer struct {
	header http.Header
	sent   http.Header // the header as it was when the status was written
	status int
	body   bytes.Buffer
}

func (w *responseBuffer) Header() http.Header { return w.header }

func (w *responseBuffer) WriteHeader(status int) {
	// Informational statuses are interim; a proxy response has room for the final one only.
	if w.status != 0 || (status >= 100 && status < 200) {
		return
	}
	w.status = status
	w.sent = w.header.Clone()
}

func (w *responseBuffer) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.body.Write(p)
}

// Flush does nothing: the whole response is returned at once. It exists so that handlers
// that flush streams (through http.ResponseController) do not fail.
func (w *responseBuffer) Flush() {}

func (w *responseBuffer) response() events.APIGatewayProxyResponse {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	header, body := w.sent, w.body.Bytes()
	if _, set := header["Content-Type"]; !set && len(body) > 0 {
		header.Set("Content-Type", http.DetectContentType(body))
	}
	resp := events.APIGatewayProxyResponse{StatusCode: w.status}
	// API Gateway merges the two maps without repeating a value present in both.
	resp.Headers, resp.MultiValueHeaders = split(header, func(vs []string) string { return vs[0] })
	if isText(header.Get("Content-Type"), body) {
		resp.Body = string(body)
	} else {
		resp.Body = base64.StdEncoding.EncodeToString(body)
		resp.IsBase64Encoded = true
	}
	return resp
}

// isText reports whether body can travel as a JSON string without being base64-encoded:
// textual media types that are valid UTF-8 (anything else would be mangled in the JSON).
func isText(contentType string, body []byte) bool {
	if len(body) == 0 {
		return true
	}
	if !utf8.Valid(body) {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/javascript", mt == "application/x-www-form-urlencoded":
		return true
	}
	return false
}

// EventFromHTTP builds the proxy event API Gateway would send a function for r, matched to
// the route template resource with pathParams: both header maps (the single-value one holding
// each header's last value, as API Gateway's does), both query maps and the path parameters,
// nil when empty; the body as text, or base64 when it is not UTF-8; and X-Forwarded-For,
// -Proto and -Port as API Gateway adds them. Fields of rc that r determines (method, resource
// path, path, source IP, user agent, protocol) are filled in where rc leaves them empty; the
// rest of rc, such as the authorizer context, is the caller's to provide.
//
// It reads r.Body entirely, and returns ErrPayloadTooLarge for a body over MaxPayloadBytes.
func EventFromHTTP(r *http.Request, resource string, pathParams map[string]string, rc events.APIGatewayProxyRequestContext) (events.APIGatewayProxyRequest, error) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxPayloadBytes+1))
		if err != nil {
			return events.APIGatewayProxyRequest{}, fmt.Errorf("read request body: %w", err)
		}
		if len(b) > MaxPayloadBytes {
			return events.APIGatewayProxyRequest{}, ErrPayloadTooLarge
		}
		body = b
	}
	path := r.URL.Path
	ev := events.APIGatewayProxyRequest{
		Resource:   resource,
		Path:       path,
		HTTPMethod: r.Method,
	}

	header := r.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if r.Host != "" {
		header.Set("Host", r.Host)
	}
	clientIP := remoteIP(r.RemoteAddr)
	forwardedHeaders(header, r, clientIP)
	// A repeated header or query parameter is its last value in the single-value maps, as API
	// Gateway fills them.
	last := func(vs []string) string { return vs[len(vs)-1] }
	ev.Headers, ev.MultiValueHeaders = split(header, last)
	ev.QueryStringParameters, ev.MultiValueQueryStringParameters = split(rawQuery(r.URL.RawQuery), last)
	if len(pathParams) > 0 {
		ev.PathParameters = maps.Clone(pathParams)
	}

	if utf8.Valid(body) {
		ev.Body = string(body)
	} else {
		ev.Body = base64.StdEncoding.EncodeToString(body)
		ev.IsBase64Encoded = true
	}

	if rc.HTTPMethod == "" {
		rc.HTTPMethod = r.Method
	}
	if rc.ResourcePath == "" {
		rc.ResourcePath = resource
	}
	if rc.Path == "" {
		// API Gateway's requestContext.path is the path the client used, stage included.
		rc.Path = path
		if rc.Stage != "" {
			rc.Path = "/" + rc.Stage + path
		}
	}
	if rc.Identity.SourceIP == "" {
		rc.Identity.SourceIP = clientIP
	}
	if rc.Identity.UserAgent == "" {
		rc.Identity.UserAgent = r.UserAgent()
	}
	if rc.Protocol == "" {
		rc.Protocol = r.Proto
	}
	ev.RequestContext = rc
	return ev, nil
}

// rawQuery splits a query string as API Gateway does: each name and value percent-decoded
// where it can be, and passed as it came where it cannot (url.ParseQuery would drop such a
// pair, and the function would answer as if it were never sent).
func rawQuery(raw string) map[string][]string {
	q := map[string][]string{}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		q[unescape(k)] = append(q[unescape(k)], unescape(v))
	}
	return q
}

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// forwardedHeaders adds the X-Forwarded-* headers API Gateway adds for the backend.
func forwardedHeaders(h http.Header, r *http.Request, clientIP string) {
	if clientIP != "" {
		if prior := h.Get("X-Forwarded-For"); prior != "" {
			h.Set("X-Forwarded-For", prior+", "+clientIP)
		} else {
			h.Set("X-Forwarded-For", clientIP)
		}
	}
	scheme, port := "http", "80"
	if r.TLS != nil {
		scheme, port = "https", "443"
	}
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		port = p
	}
	h.Set("X-Forwarded-Proto", scheme)
	h.Set("X-Forwarded-Port", port)
}

func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// gatewayError is what API Gateway answers when a function's response is malformed.
const gatewayError = `{"message": "Internal server error"}`

// WriteResponse writes a proxy response to w as API Gateway would send it to the client:
// the body base64-decoded when IsBase64Encoded, the two header maps merged (a value present
// in both is sent once), and Content-Length set from the body. A response API Gateway would
// reject (a status outside 100–599, a body that is not valid base64) becomes its 502.
func WriteResponse(w http.ResponseWriter, resp events.APIGatewayProxyResponse) {
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			writeGatewayError(w)
			return
		}
		body = b
	}
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		writeGatewayError(w)
		return
	}
	merged := http.Header{}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			merged.Add(k, v)
		}
	}
	for k, v := range resp.Headers {
		if !slices.Contains(merged.Values(k), v) {
			merged.Add(k, v)
		}
	}
	h := w.Header()
	for k, vs := range merged {
		h[k] = append(h[k], vs...)
	}
	// The function does not decide framing: a stale or wrong length would break the response.
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	if !bodyAllowed(resp.StatusCode) {
		w.WriteHeader(resp.StatusCode)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body) // the client went away; there is no one left to tell
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func writeGatewayError(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(gatewayError)))
	w.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(w, gatewayError)
}

// split turns a map of repeated values into API Gateway's two maps: one value per name (pick
// chooses it) and every value; nil maps when there is nothing.
func split(m map[string][]string, pick func([]string) string) (map[string]string, map[string][]string) {
	if len(m) == 0 {
		return nil, nil
	}
	one, all := make(map[string]string, len(m)), make(map[string][]string, len(m))
	for k, vs := range m {
		if len(vs) == 0 {
			continue
		}
		one[k], all[k] = pick(vs), slices.Clone(vs)
	}
	return one, all
}
