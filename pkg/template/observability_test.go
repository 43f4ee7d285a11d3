package template_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/template"
)

// TestAccessLog: the stage writes one JSON line per request to its own log group, made only of
// $context variables that carry nothing a caller writes: no header (Authorization included), no
// body, no query string, no User-Agent. The stage waits for the account's CloudWatch role.
func TestAccessLog(t *testing.T) {
	tpl, err := template.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	api := tpl.Resources["Api"]
	if api.DependsOn != "ApiGatewayAccountGate" || tpl.Resources["ApiGatewayAccountGate"].Type != "AWS::CloudFormation::WaitConditionHandle" {
		t.Fatalf("the stage does not wait for the account's CloudWatch role: DependsOn %v", api.DependsOn)
	}
	setting, _ := api.Properties["AccessLogSetting"].(map[string]any)
	dest, _ := setting["DestinationArn"].(map[string]any)
	attr, _ := dest["Fn::GetAtt"].([]any)
	if len(attr) != 2 || tpl.Resources[attr[0].(string)].Type != "AWS::Logs::LogGroup" || attr[1] != "Arn" {
		t.Fatalf("the access log goes to %v, want a log group of the stack", setting["DestinationArn"])
	}
	format, _ := setting["Format"].(string)
	// What API Gateway substitutes: $context variables, and nothing else can carry request data.
	vars := regexp.MustCompile(`\$context\.[A-Za-z.]+`).FindAllString(format, -1)
	if strings.Contains(strings.ReplaceAll(format, "$context.", ""), "$") {
		t.Fatalf("the format holds a variable other than $context.*: %s", format)
	}
	allowed := []string{
		"$context.requestId", "$context.extendedRequestId", "$context.requestTime", "$context.identity.sourceIp",
		"$context.httpMethod", "$context.resourcePath", "$context.status", "$context.responseLength",
		"$context.responseLatency", "$context.integrationLatency", "$context.integrationStatus",
		"$context.error.responseType", "$context.authorizer.integrationStatus", "$context.authorizer.principalId",
		"$context.authorizer.principalType", "$context.authorizer.orgId", "$context.authorizer.tokenId",
	}
	for _, v := range vars {
		if !slices.Contains(allowed, v) {
			t.Errorf("%s is not among the variables known to carry nothing a caller writes", v)
		}
	}
	if !slices.Contains(vars, "$context.requestId") {
		t.Error("API Gateway requires $context.requestId in the format")
	}
	var line map[string]string
	if err := json.Unmarshal([]byte(regexp.MustCompile(`\$context\.[A-Za-z.]+`).ReplaceAllString(format, "x")), &line); err != nil {
		t.Fatalf("a log line is not JSON: %v", err)
	}
	if _, ok := line["orgId"]; !ok {
		t.Error("the log line does not name the caller's org")
	}
}

// TestAlarms: with AlarmTopicArn set, the stack alarms on what nobody would otherwise notice,
// each to the topic: stream records given up on, a stream falling behind, an authorizer
// failing closed, and 5xx and throttling on the stage; with it empty, there are none.
func TestAlarms(t *testing.T) {
	tpl, err := template.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type watch struct{ namespace, metric, dimension, value string }
	got := map[watch]bool{}
	for id, r := range tpl.Resources {
		if r.Type != "AWS::CloudWatch::Alarm" {
			continue
		}
		if r.Condition != "HasAlarmTopic" {
			t.Errorf("%s: condition %q, want HasAlarmTopic", id, r.Condition)
		}
		if acts, _ := r.Properties["AlarmActions"].([]any); len(acts) != 1 || !isRef(acts[0], "AlarmTopicArn") {
			t.Errorf("%s: AlarmActions %v, want the topic", id, r.Properties["AlarmActions"])
		}
		w := watch{namespace: sub(r.Properties["Namespace"]), metric: r.Properties["MetricName"].(string)}
		if dims, _ := r.Properties["Dimensions"].([]any); len(dims) > 0 {
			d := dims[0].(map[string]any)
			w.dimension = d["Name"].(string)
			w.value = ref(d["Value"])
		}
		got[w] = true
	}
	for _, want := range []watch{
		{"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "UsageDeadLetterQueue"},
		{"AWS/Lambda", "IteratorAge", "FunctionName", "UsageFunction"},
		{"${AWS::StackName}/Authorizer", "Failures", "", ""},
		{"AWS/Lambda", "Errors", "FunctionName", "AuthorizerFunction"},
		{"AWS/ApiGateway", "5XXError", "ApiName", "AWS::StackName"},
		{"${AWS::StackName}/Api", "Throttled", "", ""},
	} {
		if !got[want] {
			t.Errorf("no alarm on %+v; the alarms watch %v", want, slices.Collect(maps.Keys(got)))
		}
	}
	// The two metrics the stack makes from its logs, from the fields those logs carry.
	filters := map[string]string{}
	for _, r := range tpl.Resources {
		if r.Type == "AWS::Logs::MetricFilter" {
			filters[ref(r.Properties["LogGroupName"])] = r.Properties["FilterPattern"].(string)
		}
	}
	if filters["AuthorizerLogGroup"] != `{ $.decision = "error" }` || filters["ApiAccessLogGroup"] != `{ $.status = "429" }` {
		t.Errorf("metric filters %v", filters)
	}
	if cond := tpl.Conditions["HasAlarmTopic"]; cond == nil || tpl.Parameters["AlarmTopicArn"].Default != "" {
		t.Error("alarms are not created only when AlarmTopicArn is set")
	}
}

func isRef(v any, name string) bool { return ref(v) == name }

// ref names what a Ref or Fn::GetAtt points at.
func ref(v any) string {
	m, _ := v.(map[string]any)
	if r, ok := m["Ref"].(string); ok {
		return strings.TrimSuffix(r, ".Stage")
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) > 0 {
		s, _ := ga[0].(string)
		return s
	}
	return ""
}

// sub reads a plain string or the template of a Fn::Sub.
func sub(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	m, _ := v.(map[string]any)
	s, _ := m["Fn::Sub"].(string)
	return s
}

// TestMcpConcurrencyReserved: the MCP function's concurrency is reserved from a parameter (50
// by default), so MCP traffic can neither starve the authorizer and the management functions
// nor be starved; -1 reserves none (0 would refuse every call), and the parameter cannot go
// below it.
func TestMcpConcurrencyReserved(t *testing.T) {
	tpl, err := template.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := tpl.Parameters["McpReservedConcurrency"]
	if p.Default != 50 || p.MinValue != -1 {
		t.Fatalf("McpReservedConcurrency: default %v, min %v; want 50 and -1", p.Default, p.MinValue)
	}
	want := map[string]any{"Fn::If": []any{"McpConcurrencyReserved", map[string]any{"Ref": "McpReservedConcurrency"}, map[string]any{"Ref": "AWS::NoValue"}}}
	if got := tpl.Resources["McpFunction"].Properties["ReservedConcurrentExecutions"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("ReservedConcurrentExecutions %v, want %v", got, want)
	}
	for value, reserved := range map[string]bool{"50": true, "1": true, "-1": false} {
		r := template.Resolver{Params: map[string]string{"McpReservedConcurrency": value}}
		if got, err := tpl.Condition("McpConcurrencyReserved", r); err != nil || got != reserved {
			t.Errorf("McpReservedConcurrency=%s: reserved %v (%v), want %v", value, got, err, reserved)
		}
	}
}
