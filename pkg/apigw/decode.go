package apigw

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// MaxBodyBytes bounds every request body. The largest valid body (a 64-character name and a
// 500-character description, escaped) is far smaller; anything bigger is refused unread.
const MaxBodyBytes = 16 << 10

// Decode reads the JSON object in the request body into v, which must be a pointer to a
// struct. An empty body is an empty object, since every field of some requests is optional.
// Errors: EINVALID for a body that is too large, not JSON, not one object, has a field v does
// not know, or a field of the wrong type — naming the field where there is one.
func Decode(req events.APIGatewayProxyRequest, v any) error {
	body := req.Body
	if req.IsBase64Encoded {
		if base64.StdEncoding.DecodedLen(len(body)) > 2*MaxBodyBytes {
			return tooLarge()
		}
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return invalidBody("The body is not valid base64.")
		}
		body = string(raw)
	}
	if len(body) > MaxBodyBytes {
		return tooLarge()
	}
	body = strings.TrimSpace(body)
	if body == "" {
		body = "{}"
	}
	if body[0] != '{' {
		return invalidBody("The body must be a JSON object.")
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidBody("The body must hold exactly one JSON object.")
	}
	return checkKeys(body, v)
}

// checkKeys holds the body's top-level keys to the exact field names of v: encoding/json
// matches names ignoring case and lets a repeated key win silently, so {"NAME":…} or
// {"name":"a","name":"b"} would otherwise be accepted as if the client had said something else.
func checkKeys(body string, v any) error {
	known := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	dec := json.NewDecoder(strings.NewReader(body))
	if _, err := dec.Token(); err != nil { // the opening brace, already known to be there
		return invalidBody("The body is not valid JSON.")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return invalidBody("The body is not valid JSON.")
		}
		switch {
		case !known[key]:
			return sa.Invalid(sa.FieldError{Field: key, Message: "is not a known field"})
		case seen[key]:
			return sa.Invalid(sa.FieldError{Field: key, Message: "appears more than once"})
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return invalidBody("The body is not valid JSON.")
		}
	}
	return nil
}

func decodeError(err error) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return sa.Invalid(sa.FieldError{Field: te.Field, Message: "must be a " + jsonKind(te.Type.Kind().String())})
	}
	// encoding/json reports unknown fields only in its message.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, _ := strconv.Unquote(name)
		return sa.Invalid(sa.FieldError{Field: field, Message: "is not a known field"})
	}
	return invalidBody("The body is not valid JSON.")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int32", "int64":
		return "whole number"
	case "bool":
		return "boolean"
	default:
		return goKind
	}
}

func invalidBody(msg string) error {
	return sa.Invalid(sa.FieldError{Field: "body", Message: msg})
}

func tooLarge() error {
	return invalidBody("The body is larger than 16 KiB.")
}

// Query returns the named query parameters of a request, each of which takes one value. A
// parameter given more than once (limit=5&limit=6, which API Gateway passes whole only in
// multiValueQueryStringParameters) is EINVALID naming it: taking either value would hide a
// client's bug.
func Query(req events.APIGatewayProxyRequest, names ...string) (map[string]string, error) {
	out := map[string]string{}
	var bad []sa.FieldError
	for _, name := range names {
		if len(req.MultiValueQueryStringParameters[name]) > 1 {
			bad = append(bad, sa.FieldError{Field: name, Message: "must be given at most once"})
			continue
		}
		if v, ok := req.QueryStringParameters[name]; ok {
			out[name] = v
		}
	}
	if len(bad) > 0 {
		return nil, sa.Invalid(bad...)
	}
	return out, nil
}
