package iam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
)

// Transport is the HTTP transport of one function's AWS clients: it authorizes every call
// against the function's role before it leaves, as AWS would on arrival. A call the role does
// not allow is answered as AWS answers it, with HTTP 400 and an AccessDeniedException naming
// the principal, the action and the resource, and it is logged with the function's name; it
// never reaches the service.
type Transport struct {
	Role *Role
	Env  *Environment
	Next http.RoundTripper // default http.DefaultTransport
	Log  *slog.Logger      // default slog.Default()

	mu        sync.Mutex
	iterators map[string]string // shard iterator → the stream it reads
}

// Denied describes a refused call; Transport answers it as AWS does.
type Denied struct {
	Role     *Role
	Action   string
	Resource string
	Explicit bool
}

func (d *Denied) Error() string {
	why := "because no identity-based policy allows the " + d.Action + " action"
	if d.Explicit {
		why = "with an explicit deny in an identity-based policy"
	}
	return fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s %s", d.Role.ARN(), d.Action, d.Resource, why)
}

// RoundTrip authorizes the call, then sends it.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	target := r.Header.Get("X-Amz-Target")
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	reqs, err := t.Env.Authorizations(target, body)
	if err != nil {
		return t.refuse(r, target, err), nil
	}
	for _, req := range reqs {
		if req.Action == "dynamodb:GetRecords" {
			req.Resource = t.streamOf(body)
		}
		if d := t.Role.Evaluate(req); d != Allowed {
			return t.refuse(r, target, &Denied{Role: t.Role, Action: req.Action, Resource: req.Resource, Explicit: d == ExplicitDeny}), nil
		}
	}
	next := t.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK && strings.HasPrefix(target, "DynamoDBStreams_20120810.") {
		t.learnIterators(body, resp)
	}
	return resp, err
}

// streamOf is the stream a GetRecords request's iterator reads, or "" for an iterator this
// transport did not see issued.
func (t *Transport) streamOf(body []byte) string {
	var in struct{ ShardIterator string }
	_ = json.Unmarshal(body, &in)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.iterators[in.ShardIterator]
}

// learnIterators records which stream the iterators in a Streams response read: the one the
// GetShardIterator named, or the one the GetRecords iterator read.
func (t *Transport) learnIterators(reqBody []byte, resp *http.Response) {
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	if err != nil {
		return
	}
	var out struct{ ShardIterator, NextShardIterator string }
	if json.Unmarshal(raw, &out) != nil {
		return
	}
	stream := t.streamOf(reqBody)
	if stream == "" {
		var in struct{ StreamArn string }
		_ = json.Unmarshal(reqBody, &in)
		stream = in.StreamArn
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.iterators == nil || len(t.iterators) > 10_000 {
		t.iterators = map[string]string{}
	}
	for _, it := range []string{out.ShardIterator, out.NextShardIterator} {
		if it != "" {
			t.iterators[it] = stream
		}
	}
}

// refuse answers a call as AWS answers one IAM denies, and logs it.
func (t *Transport) refuse(r *http.Request, target string, err error) *http.Response {
	log := t.Log
	if log == nil {
		log = slog.Default()
	}
	attrs := []any{slog.String("function", t.Role.Session), slog.String("operation", target)}
	if d, ok := errors.AsType[*Denied](err); ok {
		attrs = append(attrs, slog.String("action", d.Action), slog.String("resource", d.Resource))
	}
	log.Error("AWS call denied by the function's IAM policy", append(attrs, slog.String("error", err.Error()))...)
	// DynamoDB (JSON 1.0) names its errors by their coral type; the JSON 1.1 services by name.
	typ, contentType := "AccessDeniedException", "application/x-amz-json-1.1"
	if strings.HasPrefix(target, "DynamoDB") {
		typ, contentType = "com.amazon.coral.service#AccessDeniedException", "application/x-amz-json-1.0"
	}
	b, _ := json.Marshal(map[string]string{"__type": typ, "Message": err.Error()})
	return &http.Response{
		StatusCode: http.StatusBadRequest, Status: "400 Bad Request",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {contentType}, "X-Amzn-Requestid": {"local-iam-denied"}},
		Body:          io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)),
		Request:       r,
	}
}
