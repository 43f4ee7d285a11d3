package apigw_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/apigw"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		Days *int   `json:"days"`
	}
	for _, tc := range []struct {
		name  string
		req   events.APIGatewayProxyRequest
		want  body
		field string // "" for success
	}{
		{"OK", events.APIGatewayProxyRequest{Body: `{"name":"a"}`}, body{Name: "a"}, ""},
		{"OKSurroundingSpace", events.APIGatewayProxyRequest{Body: " \n{\"name\":\"a\"} \n"}, body{Name: "a"}, ""},
		{"OKEmptyIsEmptyObject", events.APIGatewayProxyRequest{Body: ""}, body{}, ""},
		{"OKBase64", events.APIGatewayProxyRequest{Body: "eyJuYW1lIjoiYSJ9", IsBase64Encoded: true}, body{Name: "a"}, ""},
		{"ErrBadBase64", events.APIGatewayProxyRequest{Body: "!!!", IsBase64Encoded: true}, body{}, "body"},
		{"ErrOversizedBase64", events.APIGatewayProxyRequest{Body: string(make([]byte, 3*apigw.MaxBodyBytes)), IsBase64Encoded: true}, body{}, "body"},
		{"ErrUnknownField", events.APIGatewayProxyRequest{Body: `{"nme":"a"}`}, body{}, "nme"},
		{"ErrWrongType", events.APIGatewayProxyRequest{Body: `{"days":"3"}`}, body{}, "days"},
		{"ErrNegativeOverflow", events.APIGatewayProxyRequest{Body: `{"days":1e999}`}, body{}, "days"},
		{"ErrArray", events.APIGatewayProxyRequest{Body: `[]`}, body{}, "body"},
		{"ErrTwoObjects", events.APIGatewayProxyRequest{Body: `{}{}`}, body{}, "body"},
		{"ErrTruncated", events.APIGatewayProxyRequest{Body: `{"name":"a"`}, body{}, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got body
			err := apigw.Decode(tc.req, &got)
			if tc.field == "" {
				if err != nil || got.Name != tc.want.Name {
					t.Fatalf("got %+v, %v", got, err)
				}
				return
			}
			e, ok := err.(*sa.Error)
			if !ok || e.Code != sa.EINVALID || len(e.Fields) != 1 || e.Fields[0].Field != tc.field {
				t.Fatalf("err = %#v, want EINVALID naming %q", err, tc.field)
			}
		})
	}
}

func TestCallerFrom(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		ok   bool
	}{
		{"Admin", apigw.AuthorizerContext(admin), true},
		{"Member", apigw.AuthorizerContext(member), true},
		{"ServiceAccount", apigw.AuthorizerContext(tokenCaller), true},
		{"ErrMissing", nil, false},
		{"ErrNoOrg", map[string]any{"principalType": "user", "sub": "u", "role": "admin"}, false},
		{"ErrUnknownRole", map[string]any{"principalType": "user", "orgId": "o", "sub": "u", "role": "owner"}, false},
		{"ErrUnknownPrincipal", map[string]any{"principalType": "robot", "orgId": "o", "sub": "u"}, false},
		{"ErrServiceAccountWithoutToken", map[string]any{"principalType": "service_account", "orgId": "o", "sub": "s", "serviceAccountId": "s"}, false},
		{"ErrNonString", map[string]any{"principalType": "user", "orgId": 7, "sub": "u", "role": "admin"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := apigw.PrincipalFrom(events.APIGatewayProxyRequestContext{Authorizer: tc.ctx})
			if (err == nil) != tc.ok {
				t.Fatalf("CallerFrom = %+v, %v; want ok=%v", c, err, tc.ok)
			}
		})
	}
}

func TestRespondHidesInternals(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		retryAfter string
	}{
		{"Internal", sa.Internal(errors.New("dynamodb: table arn:aws:... ValidationException")), 500, ""},
		{"PlainError", errors.New("boom at 0xdeadbeef"), 500, ""},
		{"Unavailable", sa.Unavailable(errors.New("ThrottlingException from 10.0.0.1")), 503, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := apigw.Respond(200, map[string]string{"x": "y"}, tc.err)
			if resp.StatusCode != tc.status || resp.Headers["Retry-After"] != tc.retryAfter {
				t.Fatalf("status %d Retry-After %q", resp.StatusCode, resp.Headers["Retry-After"])
			}
			for _, leak := range []string{"dynamodb", "0xdeadbeef", "10.0.0.1", "Throttling"} {
				if strings.Contains(resp.Body, leak) {
					t.Fatalf("body leaks %q: %s", leak, resp.Body)
				}
			}
		})
	}
}

func TestMissingAuthorizerContextIs500(t *testing.T) {
	f := newFixture(t)
	ev := loadEvent(t, "list")
	ev.RequestContext.Authorizer = nil
	resp, err := f.handler("list")(f.ctx, ev)
	if err != nil || resp.StatusCode != 500 || !strings.Contains(resp.Body, "Internal error.") {
		t.Fatalf("%d %s %v", resp.StatusCode, resp.Body, err)
	}
}

// TestDecodeExactKeys: field names match exactly and once; encoding/json alone would accept
// other cases and let a repeated key win.
func TestDecodeExactKeys(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		Days *int   `json:"expiresInDays"`
	}
	for _, tc := range []struct{ name, body, field string }{
		{"ErrUpperCase", `{"NAME":"a"}`, "NAME"},
		{"ErrMixedCase", `{"ExpiresInDays":3}`, "ExpiresInDays"},
		{"ErrDuplicate", `{"name":"a","name":"b"}`, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got body
			e, ok := apigw.Decode(events.APIGatewayProxyRequest{Body: tc.body}, &got).(*sa.Error)
			if !ok || e.Code != sa.EINVALID || len(e.Fields) != 1 || e.Fields[0].Field != tc.field {
				t.Fatalf("err = %#v, want EINVALID naming %q", e, tc.field)
			}
		})
	}
	var ok body
	if err := apigw.Decode(events.APIGatewayProxyRequest{Body: `{"name":"a","expiresInDays":3}`}, &ok); err != nil || ok.Name != "a" || *ok.Days != 3 {
		t.Fatalf("%+v %v", ok, err)
	}
}
