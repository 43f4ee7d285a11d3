package apigw

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/reqlog"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Route templates of the management API, as API Gateway reports them in the event's resource.
const (
	RouteAccounts = "/orgs/{orgId}/service-accounts"
	RouteAccount  = "/orgs/{orgId}/service-accounts/{saId}"
	RouteTokens   = "/orgs/{orgId}/service-accounts/{saId}/tokens"
	RouteToken    = "/orgs/{orgId}/service-accounts/{saId}/tokens/{tokenId}"
	RouteAudit    = "/orgs/{orgId}/audit"
)

// Handler is a Lambda handler for REST API proxy events.
type Handler func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error)

// API serves the management routes on the domain service.
type API struct {
	Service *sa.Service
	Log     *slog.Logger
}

// access is what a route demands of its caller.
type access int

const (
	read  access = iota // admins and members of the org
	write               // admins of the org
)

// result is what a route produces: a status and a body, or an error.
type result struct {
	status int
	body   any
}

// serve runs fn for a dashboard user of the path's org with the access the route needs, and
// turns its outcome into a response. Service-account tokens, other orgs' users and members
// writing are refused with 403 before fn runs.
func (a *API) serve(ctx context.Context, req events.APIGatewayProxyRequest, need access,
	fn func(c sa.Principal, org string) (result, error)) (events.APIGatewayProxyResponse, error) {
	start := time.Now()
	c, err := PrincipalFrom(req.RequestContext)
	if err != nil {
		err = sa.Internal(err) // API Gateway never invokes a function without the authorizer
	}
	org := req.PathParameters["orgId"]
	var res result
	if err == nil {
		err = authorize(c, org, need)
	}
	if err == nil {
		res, err = fn(c, org)
	}
	resp := Respond(res.status, res.body, err)
	a.logRequest(ctx, req, c, resp.StatusCode, start, err)
	return resp, nil
}

func authorize(c sa.Principal, org string, need access) error {
	switch {
	case c.Type != sa.PrincipalUser:
		return sa.Errorf(sa.EFORBIDDEN, "Service-account tokens cannot manage service accounts.")
	case c.OrgID != org:
		return sa.Errorf(sa.EFORBIDDEN, "You are not a member of this organisation.")
	case need == write && c.Role != sa.RoleAdmin:
		return sa.Errorf(sa.EFORBIDDEN, "Only organisation admins can change service accounts.")
	}
	return nil
}

func (a *API) logRequest(ctx context.Context, req events.APIGatewayProxyRequest, c sa.Principal, status int, start time.Time, err error) {
	reqlog.Log(ctx, a.Log, reqlog.Request{ID: req.RequestContext.RequestID, Method: req.HTTPMethod, Route: req.Resource,
		Status: status, Caller: c, Start: start, Err: err})
}

// Respond builds a JSON response, or a problem+json one for err. Every response is marked
// no-store: bodies are per caller, and one of them carries a token.
func Respond(status int, body any, err error) events.APIGatewayProxyResponse {
	headers := map[string]string{"Cache-Control": "no-store"}
	if err != nil {
		p := ProblemOf(err)
		status, body = p.Status, p
		headers["Content-Type"] = "application/problem+json"
		if status == http.StatusServiceUnavailable {
			headers["Retry-After"] = "1"
		}
	}
	resp := events.APIGatewayProxyResponse{StatusCode: status, Headers: headers}
	if body != nil {
		if _, ok := headers["Content-Type"]; !ok {
			headers["Content-Type"] = "application/json"
		}
		b, merr := json.Marshal(body)
		if merr != nil {
			return Respond(0, nil, sa.Internal(merr))
		}
		resp.Body = string(b)
	}
	return resp
}

// Create serves POST /orgs/{orgId}/service-accounts.
func (a *API) Create(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	return a.serve(ctx, req, write, func(c sa.Principal, org string) (result, error) {
		var in struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		}
		if err := Decode(req, &in); err != nil {
			return result{}, err
		}
		acct, warnings, err := a.Service.Create(ctx, org, c.Subject, sa.CreateInput{Name: in.Name, Description: in.Description})
		if err != nil {
			return result{}, err
		}
		out := createdAccountJSON{accountJSON: newAccountJSON(acct), Warnings: []warningJSON{}}
		for _, w := range warnings {
			out.Warnings = append(out.Warnings, warningJSON{Code: w.Code, Message: w.Message})
		}
		return result{http.StatusCreated, out}, nil
	})
}

// Read serves the read routes: the list, one account with its tokens, its tokens, and the
// org's audit report.
func (a *API) Read(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	return a.serve(ctx, req, read, func(c sa.Principal, org string) (result, error) {
		saID := req.PathParameters["saId"]
		switch req.Resource {
		case RouteAccounts:
			q, err := Query(req, "limit", "cursor")
			if err != nil {
				return result{}, err
			}
			return a.list(ctx, org, q)
		case RouteAccount:
			acct, tokens, err := a.Service.Get(ctx, org, saID)
			if err != nil {
				return result{}, err
			}
			return result{http.StatusOK, accountWithTokensJSON{newAccountJSON(acct), a.tokensJSON(tokens)}}, nil
		case RouteTokens:
			tokens, err := a.Service.ListTokens(ctx, org, saID)
			if err != nil {
				return result{}, err
			}
			return result{http.StatusOK, tokenListJSON{Items: a.tokensJSON(tokens)}}, nil
		case RouteAudit:
			return a.auditReport(ctx, org)
		}
		return result{}, sa.Errorf(sa.ENOTFOUND, "No such route.")
	})
}

func (a *API) list(ctx context.Context, org string, q map[string]string) (result, error) {
	in := sa.ListInput{Cursor: q["cursor"]}
	if s, ok := q["limit"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n == 0 {
			return result{}, sa.Invalid(sa.FieldError{Field: "limit", Message: "must be between 1 and 100"})
		}
		in.Limit = n
	}
	page, err := a.Service.List(ctx, org, in)
	if err != nil {
		return result{}, err
	}
	out := accountListJSON{Items: make([]accountJSON, 0, len(page.Items))}
	for _, acct := range page.Items {
		out.Items = append(out.Items, newAccountJSON(acct))
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	return result{http.StatusOK, out}, nil
}

// Generate serves POST /orgs/{orgId}/service-accounts/{saId}/tokens. The response is the only
// place the token ever appears.
func (a *API) Generate(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	return a.serve(ctx, req, write, func(c sa.Principal, org string) (result, error) {
		var in struct {
			Name          string `json:"name"`
			ExpiresInDays *int   `json:"expiresInDays"`
		}
		if err := Decode(req, &in); err != nil {
			return result{}, err
		}
		t, secret, err := a.Service.GenerateToken(ctx, org, req.PathParameters["saId"], c.Subject,
			sa.GenerateInput{Name: in.Name, ExpiresInDays: in.ExpiresInDays})
		if err != nil {
			return result{}, err
		}
		return result{http.StatusCreated, issuedTokenJSON{a.tokenJSON(t), secret}}, nil
	})
}

// Revoke serves DELETE /orgs/{orgId}/service-accounts/{saId}/tokens/{tokenId}.
func (a *API) Revoke(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	return a.serve(ctx, req, write, func(c sa.Principal, org string) (result, error) {
		p := req.PathParameters
		return result{status: http.StatusNoContent}, a.Service.RevokeToken(ctx, org, p["saId"], p["tokenId"], c.Subject)
	})
}

// Delete serves DELETE /orgs/{orgId}/service-accounts/{saId}.
func (a *API) Delete(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	return a.serve(ctx, req, write, func(c sa.Principal, org string) (result, error) {
		return result{status: http.StatusNoContent}, a.Service.Delete(ctx, org, req.PathParameters["saId"], c.Subject)
	})
}
