package local_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/local"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/testworld"
)

// TestMainsUseTheStacksConstructors: every function of template.yaml is built in exactly one
// place. Its functions/<name>/main.go (the directory the Makefile builds for <Name>Function)
// hands wire.Start the very constructor the local stack and the tests build it with.
func TestMainsUseTheStacksConstructors(t *testing.T) {
	_, functions := testworld.Functions(t)
	dirs, _ := filepath.Glob("../../functions/*/main.go")
	if len(dirs) != len(functions) || len(local.Constructors) != len(functions) {
		t.Fatalf("%d mains, %d constructors, %d functions in the template", len(dirs), len(local.Constructors), len(functions))
	}
	for id := range functions {
		dir := strings.ToLower(strings.TrimSuffix(id, "Function"))
		main := filepath.Join("../../functions", dir, "main.go")
		called, err := startedConstructor(main)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		c, ok := local.Constructors[id]
		if !ok {
			t.Errorf("%s has no constructor in local.Constructors", id)
			continue
		}
		if built := runtime.FuncForPC(reflect.ValueOf(c).Pointer()).Name(); built != called {
			t.Errorf("%s: main.go starts %s, the local stack builds it with %s", id, called, built)
		}
	}
}

// startedConstructor is the function main.go passes to wire.Start, as its import path and name.
func startedConstructor(path string) (string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return "", err
	}
	imports := map[string]string{}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = p
	}
	var found string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return true
		}
		if fn, ok := call.Fun.(*ast.SelectorExpr); ok && fn.Sel.Name == "Start" && imports[ident(fn.X)] == "github.com/opentrace/service-accounts/pkg/wire" {
			if arg, ok := call.Args[0].(*ast.SelectorExpr); ok {
				found = imports[ident(arg.X)] + "." + arg.Sel.Name
			}
		}
		return true
	})
	if found == "" {
		return "", os.ErrNotExist
	}
	return found, nil
}

func ident(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// withTemplate writes a copy of template.yaml with the first old after anchor replaced by new.
func withTemplate(t *testing.T, anchor, old, new string) string {
	t.Helper()
	raw, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	before, after, ok := strings.Cut(string(raw), anchor)
	if !ok || !strings.Contains(after, old) {
		t.Fatalf("template.yaml has no %q after %q", old, anchor)
	}
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(before+anchor+strings.Replace(after, old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMissingPermissionFailsAsInAWS: the functions' IAM policies in template.yaml are what
// holds their AWS calls. With dynamodb:DeleteItem taken from the revoke function's policy, the
// revoke route fails with the AccessDeniedException AWS would answer (a 500, the token still
// live) and the log names the function, the action and the resource; with
// secretsmanager:GetSecretValue taken from the generate function's, its cold start fails, as
// it would in Lambda, naming the action.
func TestMissingPermissionFailsAsInAWS(t *testing.T) {
	t.Run("RevokeWithoutDeleteItem", func(t *testing.T) {
		path := withTemplate(t, "  RevokeFunction:",
			"Action: [dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:DeleteItem, dynamodb:ConditionCheckItem]",
			"Action: [dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:ConditionCheckItem]")
		s, logs := startStack(t, func(o *local.Options) { o.Template = path })
		admin := devToken(t, s, "org_iam", "admin", "user_alice")
		api := s.URL + "/orgs/org_iam/service-accounts"
		saID := call(t, "POST", api, admin, map[string]string{"name": "iam-check"}).want(t, 201).body["id"].(string)
		issued := call(t, "POST", api+"/"+saID+"/tokens", admin, nil).want(t, 201).body
		call(t, "DELETE", api+"/"+saID+"/tokens/"+issued["id"].(string), admin, nil).want(t, 500)
		call(t, "GET", s.URL+"/v1/whoami", issued["token"].(string), nil).want(t, 200)
		for _, want := range []string{`"function":"RevokeFunction"`, `"msg":"AWS call denied by the function's IAM policy"`,
			`"action":"dynamodb:DeleteItem"`, `"resource":"arn:aws:dynamodb:us-east-1:123456789012:table/` + s.Table + `"`} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("the log does not show %s", want)
			}
		}
	})
	t.Run("GenerateWithoutTheSecret", func(t *testing.T) {
		path := withTemplate(t, "  GenerateFunction:", "Action: secretsmanager:GetSecretValue", "Action: secretsmanager:DescribeSecret")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		s, err := local.Start(context.Background(), ln, local.Options{Template: path, Logs: &testkit.Buffer{}})
		if err == nil {
			s.Close()
			t.Fatal("the stack started a function whose role cannot read its secret")
		}
		for _, want := range []string{"GenerateFunction", "AccessDeniedException", "secretsmanager:GetSecretValue"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
	})
}

// TestParameterOverrides: the stack takes template parameters as `sam deploy` does, and a
// parameter the template does not declare, or a value outside its constraints, stops it with
// CloudFormation's message.
func TestParameterOverrides(t *testing.T) {
	for _, tc := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"MaxActiveTokens": "1001"}, "Parameter 'MaxActiveTokens' must be a number not greater than 1000"},
		{map[string]string{"MaxActiveTokens": "ten"}, "Parameter 'MaxActiveTokens' must be a number."},
		{map[string]string{"Stage": "qa"}, "Parameter 'Stage' must be one of AllowedValues"},
		{map[string]string{"NoSuchParameter": "1"}, "Parameters: [NoSuchParameter] do not exist in the template"},
		// A prod stage that would accept session tokens issued for any application.
		{map[string]string{"Stage": "prod", "IdentityAudience": "", "IdentityAuthorizedParties": ""},
			"rule ProdChecksWhoDashboardTokensAreFor failed: A prod stage must set IdentityAudience or IdentityAuthorizedParties"},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s, err := local.Start(context.Background(), ln, local.Options{Template: "../../template.yaml", Params: tc.params, Logs: &testkit.Buffer{}})
		ln.Close()
		if err == nil {
			s.Close()
			t.Fatalf("%v: the stack started", tc.params)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %q, want %q", tc.params, err, tc.want)
		}
	}
	// A valid value applies as in AWS: the cap on tokens is the one given.
	s, _ := startStack(t, func(o *local.Options) { o.Params = map[string]string{"MaxActiveTokens": "1"} })
	admin := devToken(t, s, "org_params", "admin", "user_alice")
	api := s.URL + "/orgs/org_params/service-accounts"
	saID := call(t, "POST", api, admin, map[string]string{"name": "params-check"}).want(t, 201).body["id"].(string)
	call(t, "POST", api+"/"+saID+"/tokens", admin, nil).want(t, 201)
	call(t, "POST", api+"/"+saID+"/tokens", admin, nil).want(t, 409)
}

// TestSamconfigEnvironmentsPassTheRules: each environment's parameter_overrides in
// samconfig.toml pass the template's parameter checks and Rules, as CloudFormation would check
// them before deploying: a prod deploy that would fail on a rule fails here first.
func TestSamconfigEnvironmentsPassTheRules(t *testing.T) {
	raw, err := os.ReadFile("../../samconfig.toml")
	if err != nil {
		t.Fatal(err)
	}
	envs := regexp.MustCompile(`(?s)\[(\w+)\.deploy\.parameters\].*?parameter_overrides = \[(.*?)\]`).FindAllSubmatch(raw, -1)
	if len(envs) != 2 {
		t.Fatalf("found %d environments with parameter_overrides, want dev and prod", len(envs))
	}
	for _, env := range envs {
		params := map[string]string{}
		for _, kv := range regexp.MustCompile(`"([^"=]+)=([^"]*)"`).FindAllSubmatch(env[2], -1) {
			params[string(kv[1])] = string(kv[2])
		}
		// The template's defaults, where the local stack would put its own issuer's.
		for _, k := range []string{"IdentityAudience", "IdentityAuthorizedParties"} {
			if _, ok := params[k]; !ok {
				params[k] = ""
			}
		}
		t.Run(string(env[1]), func(t *testing.T) {
			if params["Stage"] != string(env[1]) {
				t.Fatalf("Stage=%q", params["Stage"])
			}
			startStack(t, func(o *local.Options) { o.Params = params })
		})
	}
}
