package iam_test

import (
	"testing"

	"github.com/opentrace/service-accounts/pkg/iam"
)

func role(t *testing.T, docs ...string) *iam.Role {
	t.Helper()
	r := &iam.Role{Name: "FnRole", Session: "Fn", Account: "123456789012"}
	for i, d := range docs {
		p, err := iam.ParseDocument("p"+string(rune('0'+i)), mustJSON(t, d))
		if err != nil {
			t.Fatal(err)
		}
		r.Policies = append(r.Policies, p)
	}
	return r
}

const table = "arn:aws:dynamodb:us-east-1:123456789012:table/t"

// TestEvaluate: IAM's evaluation logic for identity-based policies, case by case.
func TestEvaluate(t *testing.T) {
	allowGet := `{"Statement":[{"Effect":"Allow","Action":["dynamodb:GetItem"],"Resource":"` + table + `"}]}`
	for _, tc := range []struct {
		name string
		docs []string
		req  iam.Request
		want iam.Decision
	}{
		{"AllowExact", []string{allowGet}, iam.Request{Action: "dynamodb:GetItem", Resource: table}, iam.Allowed},
		{"ActionCaseInsensitive", []string{allowGet}, iam.Request{Action: "DynamoDB:getitem", Resource: table}, iam.Allowed},
		{"OtherActionDenied", []string{allowGet}, iam.Request{Action: "dynamodb:ConditionCheckItem", Resource: table}, iam.ImplicitDeny},
		{"ResourceCaseSensitive", []string{allowGet}, iam.Request{Action: "dynamodb:GetItem", Resource: table + "/index/x"}, iam.ImplicitDeny},
		{"NoPolicies", nil, iam.Request{Action: "dynamodb:GetItem", Resource: table}, iam.ImplicitDeny},
		{"ActionWildcard", []string{`{"Statement":[{"Effect":"Allow","Action":"dynamodb:Get*","Resource":"*"}]}`},
			iam.Request{Action: "dynamodb:GetItem", Resource: table}, iam.Allowed},
		{"ResourceQuestionMark", []string{`{"Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:1:secret:p-??????"}]}`},
			iam.Request{Action: "secretsmanager:GetSecretValue", Resource: "arn:aws:secretsmanager:us-east-1:1:secret:p-AbCdEf"}, iam.Allowed},
		{"ExplicitDenyWins", []string{allowGet, `{"Statement":[{"Effect":"Deny","Action":"dynamodb:*","Resource":"*"}]}`},
			iam.Request{Action: "dynamodb:GetItem", Resource: table}, iam.ExplicitDeny},
		{"NotAction", []string{`{"Statement":[{"Effect":"Allow","NotAction":"dynamodb:DeleteItem","Resource":"*"}]}`},
			iam.Request{Action: "dynamodb:DeleteItem", Resource: table}, iam.ImplicitDeny},
		{"LeadingKeysAllowed", []string{leadingKeys},
			iam.Request{Action: "dynamodb:UpdateItem", Resource: table, Context: map[string][]string{
				"dynamodb:leadingkeys": {"TOKENHASH#ab"}, "dynamodb:attributes": {"pk", "sk", "lastUsedAt"}}}, iam.Allowed},
		{"LeadingKeysOtherPartition", []string{leadingKeys},
			iam.Request{Action: "dynamodb:UpdateItem", Resource: table, Context: map[string][]string{
				"dynamodb:leadingkeys": {"ORG#acme"}, "dynamodb:attributes": {"pk", "sk", "lastUsedAt"}}}, iam.ImplicitDeny},
		{"AttributesOutsideTheList", []string{leadingKeys},
			iam.Request{Action: "dynamodb:UpdateItem", Resource: table, Context: map[string][]string{
				"dynamodb:leadingkeys": {"TOKENHASH#ab"}, "dynamodb:attributes": {"pk", "sk", "orgId"}}}, iam.ImplicitDeny},
		{"ForAllValuesHoldsForAnAbsentKey", []string{leadingKeys},
			iam.Request{Action: "dynamodb:UpdateItem", Resource: table}, iam.Allowed},
		{"NullRequiresTheKey", []string{`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"dynamodb:LeadingKeys":"false"}}}]}`},
			iam.Request{Action: "dynamodb:Scan", Resource: table}, iam.ImplicitDeny},
		{"StringNotEqualsOnAbsentKey", []string{`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"dynamodb:Select":"COUNT"}}}]}`},
			iam.Request{Action: "dynamodb:PutItem", Resource: table}, iam.Allowed},
		{"IfExists", []string{`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"dynamodb:ReturnValues":"NONE"}}}]}`},
			iam.Request{Action: "dynamodb:PutItem", Resource: table, Context: map[string][]string{"dynamodb:returnvalues": {"ALL_OLD"}}}, iam.ImplicitDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := role(t, tc.docs...).Evaluate(tc.req); got != tc.want {
				t.Fatalf("decision %v, want %v", got, tc.want)
			}
		})
	}
}

const leadingKeys = `{"Statement":[{"Effect":"Allow","Action":"dynamodb:UpdateItem","Resource":"` + table + `",
	"Condition":{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["TOKENHASH#*"]},
	"ForAllValues:StringEquals":{"dynamodb:Attributes":["pk","sk","lastUsedAt"]}}}]}`

func TestParseDocumentRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"NoEffect":          `{"Statement":[{"Action":"*","Resource":"*"}]}`,
		"BothActions":       `{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"x","Resource":"*"}]}`,
		"NoResource":        `{"Statement":[{"Effect":"Allow","Action":"*"}]}`,
		"UnknownElement":    `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}]}`,
		"UnresolvedFnGetAt": `{"Statement":[{"Effect":"Allow","Action":"*","Resource":{"Fn::GetAtt":["T","Arn"]}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := iam.ParseDocument("p", mustJSON(t, doc)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
