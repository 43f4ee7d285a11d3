package template

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// API is an AWS::Serverless::Api: its stage, its default TOKEN authorizer and its Gateway
// Responses.
type API struct {
	LogicalID        string
	Stage            any // unresolved StageName
	Authorizer       *Authorizer
	GatewayResponses map[string]GatewayResponse
	// Throttling of the whole stage: unresolved ThrottlingRateLimit and ThrottlingBurstLimit
	// of a MethodSettings entry for every resource and method; nil when not throttled.
	RateLimit, BurstLimit any
}

// Authorizer is a Lambda TOKEN authorizer of an API.
type Authorizer struct {
	Name     string
	Function string // logical id of the authorizer function
	Header   string // the identity source
	CacheTTL any    // unresolved ReauthorizeEvery (seconds); nil means API Gateway's 300
}

// GatewayResponse is a configured Gateway Response: status, headers (values unquoted from
// API Gateway's 'literal' syntax) and body templates by content type.
type GatewayResponse struct {
	StatusCode int
	Headers    map[string]string
	Templates  map[string]string
}

var (
	supportedAPIProperties = []string{"StageName", "TracingEnabled", "Auth", "GatewayResponses", "MethodSettings",
		"AccessLogSetting", "OpenApiVersion"}
	supportedAuthProperties       = []string{"DefaultAuthorizer", "Authorizers"}
	supportedAuthorizerProperties = []string{"FunctionArn", "FunctionPayloadType", "Identity"}
	supportedIdentityProperties   = []string{"Header", "ReauthorizeEvery"}
)

// API returns the AWS::Serverless::Api with the given logical id. Properties, auth settings
// and authorizer kinds the local stack cannot honour are errors.
func (t *Template) API(logicalID string) (API, error) {
	r, ok := t.Resources[logicalID]
	if !ok || r.Type != "AWS::Serverless::Api" {
		return API{}, fmt.Errorf("template: no AWS::Serverless::Api %q", logicalID)
	}
	if err := only("api "+logicalID, r.Properties, supportedAPIProperties); err != nil {
		return API{}, err
	}
	api := API{LogicalID: logicalID, Stage: r.Properties["StageName"], GatewayResponses: map[string]GatewayResponse{}}
	auth := mapping(r.Properties["Auth"])
	if err := only("api "+logicalID+" Auth", auth, supportedAuthProperties); err != nil {
		return API{}, err
	}
	if name := str(auth["DefaultAuthorizer"]); name != "" {
		a := mapping(mapping(auth["Authorizers"])[name])
		if err := only("authorizer "+name, a, supportedAuthorizerProperties); err != nil {
			return API{}, err
		}
		if pt := str(a["FunctionPayloadType"]); pt != "TOKEN" {
			return API{}, fmt.Errorf("template: authorizer %s: payload type %q is not supported locally (want TOKEN)", name, pt)
		}
		ga, _ := mapping(a["FunctionArn"])["Fn::GetAtt"].([]any)
		if len(ga) != 2 || ga[1] != "Arn" {
			return API{}, fmt.Errorf("template: authorizer %s: FunctionArn must be !GetAtt <Function>.Arn", name)
		}
		id := mapping(a["Identity"])
		if err := only("authorizer "+name+" Identity", id, supportedIdentityProperties); err != nil {
			return API{}, err
		}
		header := str(id["Header"])
		if header == "" {
			header = "Authorization"
		}
		api.Authorizer = &Authorizer{Name: name, Function: fmt.Sprint(ga[0]), Header: header, CacheTTL: id["ReauthorizeEvery"]}
	}
	for _, raw := range list(r.Properties["MethodSettings"]) {
		ms := mapping(raw)
		if err := only("api "+logicalID+" MethodSettings", ms, []string{"ResourcePath", "HttpMethod", "ThrottlingRateLimit", "ThrottlingBurstLimit"}); err != nil {
			return API{}, err
		}
		if str(ms["ResourcePath"]) != "/*" || str(ms["HttpMethod"]) != "*" {
			return API{}, fmt.Errorf("template: api %s: the local stack supports stage-wide MethodSettings only (/*, *)", logicalID)
		}
		api.RateLimit, api.BurstLimit = ms["ThrottlingRateLimit"], ms["ThrottlingBurstLimit"]
	}
	for kind, raw := range mapping(r.Properties["GatewayResponses"]) {
		g := mapping(raw)
		gr := GatewayResponse{Headers: map[string]string{}, Templates: map[string]string{}}
		gr.StatusCode, _ = g["StatusCode"].(int)
		for h, v := range mapping(mapping(g["ResponseParameters"])["Headers"]) {
			gr.Headers[h] = strings.Trim(str(v), "'")
		}
		for ct, v := range mapping(g["ResponseTemplates"]) {
			gr.Templates[ct] = str(v)
		}
		api.GatewayResponses[kind] = gr
	}
	return api, nil
}

// APIs returns the logical ids of every AWS::Serverless::Api.
func (t *Template) APIs() []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == "AWS::Serverless::Api" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func only(what string, props map[string]any, allowed []string) error {
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(props)) {
		if !slices.Contains(allowed, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("template: %s: %s not supported by the local stack", what, strings.Join(bad, ", "))
	}
	return nil
}
