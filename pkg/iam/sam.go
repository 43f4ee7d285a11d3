package iam

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opentrace/service-accounts/pkg/template"
)

// RoleDefinition is the execution role AWS SAM generates for a function, as the transformed
// template holds it: managed policy ARNs, and inline policies whose documents keep their
// intrinsic functions unresolved. Its JSON is the same as the generated AWS::IAM::Role's
// ManagedPolicyArns and Policies, which a test compares with aws-sam-translator's output.
type RoleDefinition struct {
	ManagedPolicyArns []string       `json:"ManagedPolicyArns"`
	Policies          []InlinePolicy `json:"Policies,omitempty"`
}

// InlinePolicy is one of a role's inline policies.
type InlinePolicy struct {
	PolicyName     string `json:"PolicyName"`
	PolicyDocument any    `json:"PolicyDocument"`
}

const awsManaged = "arn:aws:iam::aws:policy/"

// managedNames maps the AWS managed policies the expansion knows to their ARNs.
var managedNames = map[string]string{
	"AWSLambdaBasicExecutionRole":    awsManaged + "service-role/AWSLambdaBasicExecutionRole",
	"AWSXrayWriteOnlyAccess":         awsManaged + "AWSXrayWriteOnlyAccess",
	"AWSLambdaDynamoDBExecutionRole": awsManaged + "service-role/AWSLambdaDynamoDBExecutionRole",
	"AWSLambdaSQSQueueExecutionRole": awsManaged + "service-role/AWSLambdaSQSQueueExecutionRole",
}

// eventPolicies are the managed policies SAM adds for a function's event sources.
var eventPolicies = map[string]string{
	"DynamoDB": managedNames["AWSLambdaDynamoDBExecutionRole"],
	"SQS":      managedNames["AWSLambdaSQSQueueExecutionRole"],
}

// Expand builds a function's execution role as AWS SAM (aws-sam-translator) does, in the
// standard partition:
//   - AWSLambdaBasicExecutionRole, then AWSXrayWriteOnlyAccess when Tracing is set and not
//     Disabled, then the managed policies the function names, then those its event sources
//     need (DynamoDB, SQS), without repeats;
//   - each document or policy template of Policies as the inline policy <Fn>RolePolicy<i>,
//     where i is its position among all of Policies; then an <Fn><Event>SQSPolicy for a stream
//     event whose OnFailure destination is of Type SQS.
//
// What SAM does that the expansion does not model (a Role given outright, VPC, other
// destinations, unknown policy templates or managed policies) is an error, so that a function's
// permissions are never silently different here.
func Expand(tpl *template.Template, f template.Function, r template.Resolver) (RoleDefinition, error) {
	var def RoleDefinition
	managed := func(arn string) {
		if !slices.Contains(def.ManagedPolicyArns, arn) {
			def.ManagedPolicyArns = append(def.ManagedPolicyArns, arn)
		}
	}
	managed(managedNames["AWSLambdaBasicExecutionRole"])
	if f.Tracing != nil {
		mode, err := tpl.Resolve(f.Tracing, r)
		if err != nil {
			return RoleDefinition{}, err
		}
		if mode != "Disabled" {
			managed(managedNames["AWSXrayWriteOnlyAccess"])
		}
	}
	var inline []InlinePolicy
	for i, p := range f.Policies {
		name := fmt.Sprintf("%sRolePolicy%d", f.LogicalID, i)
		switch p := p.(type) {
		case string:
			arn, ok := managedNames[p]
			if _, known := managedDocuments[p]; known {
				arn, ok = p, true // an ARN written out
			}
			if !ok {
				return RoleDefinition{}, fmt.Errorf("iam: %s: managed policy %q is not modelled locally", f.LogicalID, p)
			}
			managed(arn)
		case map[string]any:
			doc, err := inlineDocument(p)
			if err != nil {
				return RoleDefinition{}, fmt.Errorf("iam: %s: policy %d: %w", f.LogicalID, i, err)
			}
			inline = append(inline, InlinePolicy{PolicyName: name, PolicyDocument: doc})
		default:
			return RoleDefinition{}, fmt.Errorf("iam: %s: policy %d is neither a name, a policy template nor a document", f.LogicalID, i)
		}
	}
	events := slices.Collect(maps.Values(f.Events))
	// SAM orders events by their Path property where they have one, else by name.
	order := func(e template.Event) string {
		if p, ok := e.Properties["Path"].(string); ok {
			return p
		}
		return e.Name
	}
	slices.SortFunc(events, func(a, b template.Event) int { return strings.Compare(order(a), order(b)) })
	for _, e := range events {
		if arn, ok := eventPolicies[e.Type]; ok {
			managed(arn)
		}
		dest, _ := e.Properties["DestinationConfig"].(map[string]any)
		onFailure, _ := dest["OnFailure"].(map[string]any)
		switch typ, _ := onFailure["Type"].(string); typ {
		case "":
		case "SQS":
			inline = append(inline, InlinePolicy{
				PolicyName: f.LogicalID + e.Name + "SQSPolicy",
				PolicyDocument: map[string]any{"Statement": []any{map[string]any{
					"Action": "sqs:SendMessage", "Effect": Allow, "Resource": onFailure["Destination"],
				}}},
			})
		default:
			return RoleDefinition{}, fmt.Errorf("iam: %s event %s: an OnFailure destination of type %s is not modelled locally", f.LogicalID, e.Name, typ)
		}
	}
	def.Policies = inline
	return def, nil
}

// inlineDocument is a policy of Policies as SAM puts it in the role: a document as written, or
// a policy template's definition with its parameters substituted.
func inlineDocument(p map[string]any) (any, error) {
	if _, ok := p["Statement"]; ok {
		return p, nil
	}
	if len(p) != 1 {
		return nil, fmt.Errorf("not a policy document or a single policy template")
	}
	for name, args := range p {
		pt, ok := policyTemplates[name]
		if !ok {
			return nil, fmt.Errorf("policy template %s is not modelled locally", name)
		}
		values, _ := args.(map[string]any)
		for _, param := range pt.Parameters {
			if _, ok := values[param]; !ok {
				return nil, fmt.Errorf("policy template %s needs %s", name, param)
			}
		}
		var def any
		if err := json.Unmarshal([]byte(pt.Definition), &def); err != nil {
			return nil, fmt.Errorf("policy template %s: %w", name, err)
		}
		return substitute(def, values), nil
	}
	panic("unreachable")
}

// substitute replaces each {"Ref": <parameter>} of a policy template with the parameter's value,
// as SAM's policy templates plugin does; every other intrinsic stays for CloudFormation.
func substitute(v any, values map[string]any) any {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["Ref"].(string); ok && len(v) == 1 {
			if val, ok := values[ref]; ok {
				return val
			}
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = substitute(e, values)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = substitute(e, values)
		}
		return out
	}
	return v
}

// Build expands a function's role and resolves it into a Role to evaluate requests against:
// the managed policies' documents, and the inline documents with their intrinsic functions
// resolved through r.
func Build(tpl *template.Template, f template.Function, r template.Resolver, account string) (*Role, error) {
	def, err := Expand(tpl, f, r)
	if err != nil {
		return nil, err
	}
	role := &Role{Name: f.LogicalID + "Role", Session: f.LogicalID, Account: account}
	for _, arn := range def.ManagedPolicyArns {
		var doc any
		if err := json.Unmarshal([]byte(managedDocuments[arn]), &doc); err != nil {
			return nil, fmt.Errorf("iam: managed policy %s: %w", arn, err)
		}
		p, err := ParseDocument(arn, doc)
		if err != nil {
			return nil, err
		}
		role.Policies = append(role.Policies, p)
	}
	for _, ip := range def.Policies {
		doc, err := tpl.ResolveDeep(ip.PolicyDocument, r)
		if err != nil {
			return nil, fmt.Errorf("iam: %s: %w", ip.PolicyName, err)
		}
		p, err := ParseDocument(ip.PolicyName, doc)
		if err != nil {
			return nil, err
		}
		role.Policies = append(role.Policies, p)
	}
	return role, nil
}
