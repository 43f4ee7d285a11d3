package apigw_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/apigw"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
)

// fuzzCreateBody and fuzzGenerateBody are the request bodies Create and Generate decode,
// copied from their handlers (where they are anonymous).
type fuzzCreateBody struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

type fuzzGenerateBody struct {
	Name          string `json:"name"`
	ExpiresInDays *int   `json:"expiresInDays"`
}

// Encodings of a FuzzDecode body.
const (
	fuzzPlain     = iota // the body as given, then pad spaces
	fuzzBase64Raw        // the body as base64 text, then pad 'A's: long and malformed base64 alike
	fuzzBase64Of         // the body and pad spaces, base64-encoded by the test
	fuzzEncodings
)

// decodeRequest builds the event FuzzDecode decodes. Padding reaches MaxBodyBytes without a
// 16 KiB input, which the fuzzer would spend its time copying and minimizing.
func decodeRequest(body string, encoding uint8, pad uint16) events.APIGatewayProxyRequest {
	switch encoding % fuzzEncodings {
	case fuzzBase64Raw:
		return events.APIGatewayProxyRequest{Body: body + strings.Repeat("A", int(pad)), IsBase64Encoded: true}
	case fuzzBase64Of:
		raw := body + strings.Repeat(" ", int(pad))
		return events.APIGatewayProxyRequest{Body: base64.StdEncoding.EncodeToString([]byte(raw)), IsBase64Encoded: true}
	default:
		return events.APIGatewayProxyRequest{Body: body + strings.Repeat(" ", int(pad))}
	}
}

// FuzzDecode checks Decode on arbitrary bodies, plain or base64 (see decodeRequest), decoded
// into the create and the generate request: it never panics; a body over MaxBodyBytes (after
// base64 decoding) always fails; every failure is an *serviceaccount.Error with code EINVALID
// naming exactly one field — "body", a field of the request whose value has the wrong type,
// or a key of the body that matches no field; and every success reads what json.Unmarshal
// reads from the same bytes, and round-trips: the decoded request, marshalled and decoded
// again (plain and base64), is unchanged. Seeds live in testdata/fuzz/FuzzDecode as well as
// below.
func FuzzDecode(f *testing.F) {
	for _, s := range []struct {
		body     string
		encoding uint8
		pad      uint16
	}{
		{`{"name":"claude-code-dev-team","description":"Claude Code for the dev team"}`, fuzzPlain, 0},
		{`{"name":"laptop","expiresInDays":90}`, fuzzPlain, 0},
		{`{"name":"ci-pipeline"}`, fuzzBase64Of, 0},
		{base64.StdEncoding.EncodeToString([]byte(`{"name":"ci-pipeline"}`)), fuzzBase64Raw, 0},
		{"", fuzzPlain, 0},
		{" \n\t", fuzzBase64Raw, 0},
		{`{"NAME":"x","Description":null}`, fuzzPlain, 0},
		{`{"expiresInDays":1e999}`, fuzzPlain, 0},
		{`{"expiresInDays":-9223372036854775809}`, fuzzPlain, 0},
		{`{"name":"a\u0000\ud800b"}`, fuzzPlain, 0},
		{`{"":1}`, fuzzPlain, 0},
		{`{"name":"a"}{"name":"b"}`, fuzzPlain, 0},
		{`{"name":"a"} x`, fuzzPlain, 0},
		{`[{"name":"a"}]`, fuzzPlain, 0},
		{"\xef\xbb\xbf{}", fuzzPlain, 0},
		{`{"name":"a"}`, fuzzPlain, apigw.MaxBodyBytes - 12},
		{`{"name":"a"}`, fuzzPlain, apigw.MaxBodyBytes - 11},
		{`{"name":"a"}`, fuzzBase64Of, apigw.MaxBodyBytes - 11},
		{"eyJuYW1lIjoiYSJ9", fuzzBase64Raw, 3 * apigw.MaxBodyBytes},
		{"eyJuYW1lIjoiYSJ9\n", fuzzBase64Raw, 0},
		{"eyJuYW1lIjoiYSJ9", fuzzPlain, 0},
		{"!!!", fuzzBase64Raw, 0},
	} {
		f.Add(s.body, s.encoding, s.pad)
	}

	f.Fuzz(func(t *testing.T, body string, encoding uint8, pad uint16) {
		req := decodeRequest(body, encoding, pad)
		checkDecode[fuzzCreateBody](t, req, "name", "description")
		checkDecode[fuzzGenerateBody](t, req, "name", "expiresInDays")
	})
}

// checkDecode decodes req into a T, whose JSON field names are known, and checks FuzzDecode's
// invariant.
func checkDecode[T any](t *testing.T, req events.APIGatewayProxyRequest, known ...string) {
	t.Helper()
	raw, rawErr := []byte(req.Body), error(nil)
	if req.IsBase64Encoded {
		raw, rawErr = base64.StdEncoding.DecodeString(req.Body)
	}
	var got T
	err := apigw.Decode(req, &got)
	if err != nil {
		e, ok := err.(*sa.Error)
		if !ok || e.Code != sa.EINVALID || len(e.Fields) != 1 || e.Fields[0].Message == "" {
			t.Fatalf("Decode(%q, base64=%v) into %T = %#v, want an EINVALID *Error naming one field", req.Body, req.IsBase64Encoded, got, err)
		}
		field, msg := e.Fields[0].Field, e.Fields[0].Message
		switch {
		case field == "body":
		case slices.Contains(known, field): // a value of the wrong type, or a repeated key
		case msg == "is not a known field":
			if slices.Contains(known, field) {
				t.Fatalf("Decode(%q) into %T calls %q unknown, but it is a field", req.Body, got, field)
			}
		default:
			t.Fatalf("Decode(%q) into %T names field %q (%s), which is neither the body, a field, nor an unknown key",
				req.Body, got, field, msg)
		}
		if rawErr == nil && len(raw) > apigw.MaxBodyBytes && field != "body" {
			t.Fatalf("Decode of a %d-byte body failed naming %q, not the body", len(raw), field)
		}
		return
	}

	if rawErr != nil {
		t.Fatalf("Decode accepted %q as base64, which encoding/base64 refuses: %v", req.Body, rawErr)
	}
	if len(raw) > apigw.MaxBodyBytes {
		t.Fatalf("Decode accepted a %d-byte body; the limit is %d", len(raw), apigw.MaxBodyBytes)
	}
	var want T
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 {
		if err := json.Unmarshal(trimmed, &want); err != nil {
			t.Fatalf("Decode accepted %q, which json.Unmarshal refuses: %v", raw, err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%q) = %+v, json.Unmarshal reads %+v", raw, got, want)
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(got); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > apigw.MaxBodyBytes {
		return // escaping made a body that fitted too large to decode again
	}
	for _, r := range []events.APIGatewayProxyRequest{
		{Body: buf.String()},
		{Body: base64.StdEncoding.EncodeToString(buf.Bytes()), IsBase64Encoded: true},
	} {
		var back T
		if err := apigw.Decode(r, &back); err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("%+v does not round-trip through %q (base64=%v): got %+v, %v", got, r.Body, r.IsBase64Encoded, back, err)
		}
	}
}

// TestFuzzDecodeCorpus keeps the committed seeds meaningful: files named valid* hold a body
// both requests decode, files named bad* one both refuse naming the body, and files named
// field* one both refuse naming a field; other files (mixed*, fitting one request only, and
// those the fuzzer wrote) are checked by FuzzDecode itself.
func TestFuzzDecodeCorpus(t *testing.T) {
	for _, f := range testkit.Corpus(t, "FuzzDecode", 6) {
		var wantField string
		switch {
		case strings.HasPrefix(f.Name, "valid"):
		case strings.HasPrefix(f.Name, "bad"):
			wantField = "body"
		case strings.HasPrefix(f.Name, "field"):
			wantField = "a field"
		default:
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			var body string
			var encoding uint8
			var pad uint16
			f.Scan(t, &body, &encoding, &pad)
			req := decodeRequest(body, encoding, pad)
			for _, v := range []any{&fuzzCreateBody{}, &fuzzGenerateBody{}} {
				err := apigw.Decode(req, v)
				var field string
				if e, ok := err.(*sa.Error); ok && len(e.Fields) == 1 {
					field = e.Fields[0].Field
				}
				switch {
				case wantField == "" && err != nil:
					t.Errorf("Decode into %T: %v, want success", v, err)
				case wantField == "body" && field != "body":
					t.Errorf("Decode into %T: %v, want an error naming the body", v, err)
				case wantField == "a field" && (err == nil || field == "body"):
					t.Errorf("Decode into %T: %v, want an error naming a field", v, err)
				}
			}
		})
	}
}
