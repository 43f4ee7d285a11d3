package template_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/template"
)

// TestParseOverrides reads `sam deploy --parameter-overrides` syntax as SAM CLI does, and
// refuses what SAM would silently drop.
func TestParseOverrides(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"MaxActiveTokens=60", map[string]string{"MaxActiveTokens": "60"}},
		{"Stage=prod  LogRetentionDays=400", map[string]string{"Stage": "prod", "LogRetentionDays": "400"}},
		{"ParameterKey=Stage,ParameterValue=prod ParameterKey=MaxActiveTokens,ParameterValue=3", map[string]string{"Stage": "prod", "MaxActiveTokens": "3"}},
		{`AuditSchedule="rate(2 days)"`, map[string]string{"AuditSchedule": "rate(2 days)"}},
		{`AuditSchedule='rate(2 days)' Stage=dev`, map[string]string{"AuditSchedule": "rate(2 days)", "Stage": "dev"}},
		{`AuditSchedule=rate(2\ days)`, map[string]string{"AuditSchedule": "rate(2 days)"}},
		{"IdentityAudience=", map[string]string{"IdentityAudience": ""}},
		{"A=b=c", map[string]string{"A": "b=c"}},
	} {
		got, err := template.ParseOverrides(tc.in)
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("%q: %v (%v), want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"garbage", "Max-Tokens=1", "A=1 A=2", "ParameterKey=A,Value=1"} {
		if got, err := template.ParseOverrides(bad); err == nil {
			t.Errorf("%q was accepted as %v", bad, got)
		}
	}
}

// TestCheckParams validates values as CloudFormation does, with its messages.
func TestCheckParams(t *testing.T) {
	tpl, err := template.Parse([]byte(`
Parameters:
  Count: {Type: Number, MinValue: 1, MaxValue: 10}
  Mode: {Type: String, AllowedValues: [a, b]}
  Days: {Type: Number, AllowedValues: [1, 7]}
  Name: {Type: String, MinLength: 2, MaxLength: 4, AllowedPattern: "[a-z]+"}
  Flag: {Type: String, AllowedPattern: "true|false", ConstraintDescription: Must be true or false}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		params map[string]string
		want   string // "" for valid
	}{
		{map[string]string{"Count": "10", "Mode": "b", "Days": "7", "Name": "ab", "Flag": "true"}, ""},
		{map[string]string{"Count": "1.5e0"}, ""},
		{map[string]string{"Count": "0"}, "Parameter 'Count' must be a number not less than 1"},
		{map[string]string{"Count": "11"}, "Parameter 'Count' must be a number not greater than 10"},
		{map[string]string{"Count": "x"}, "Parameter 'Count' must be a number."},
		{map[string]string{"Mode": "c"}, "Parameter 'Mode' must be one of AllowedValues"},
		{map[string]string{"Days": "3"}, "Parameter 'Days' must be one of AllowedValues"},
		{map[string]string{"Name": "a"}, "Parameter 'Name' must contain at least 2 characters"},
		{map[string]string{"Name": "abcde"}, "Parameter 'Name' must contain at most 4 characters"},
		{map[string]string{"Name": "AB"}, "Parameter 'Name' must match pattern [a-z]+"},
		{map[string]string{"Flag": "yes"}, "Parameter Flag failed to satisfy constraint: Must be true or false"},
		{map[string]string{"Other": "1", "More": "2"}, "Parameters: [More, Other] do not exist in the template"},
	} {
		err := tpl.CheckParams(tc.params)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.params, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want %q", tc.params, err, tc.want)
		}
	}
}
