package local_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/local"
	"github.com/opentrace/service-accounts/pkg/testworld"
)

// TestServesEveryRouteOfTheTemplate: every route of template.yaml reaches its function
// through the authorizer (nothing answers the gateway's "no such route"), every function has
// local wiring, and every stream subscription is running.
func TestServesEveryRouteOfTheTemplate(t *testing.T) {
	s, _ := startStack(t)
	_, functions := testworld.Functions(t)
	admin := devToken(t, s, "org_acme", "admin", "user_alice")
	routes, subscriptions := 0, 0
	for id, f := range functions {
		if _, ok := local.Constructors[id]; !ok {
			t.Errorf("function %s has no constructor", id)
		}
		for _, e := range f.Events {
			switch e.Type {
			case "Api":
				routes++
				path := strings.NewReplacer("{orgId}", "org_acme", "{saId}", "sa_01JAAAAAAAAAAAAAAAAAAAAAAA",
					"{tokenId}", "tok_01JAAAAAAAAAAAAAAAAAAAAAAA").Replace(e.Properties["Path"].(string))
				method := e.Properties["Method"].(string)
				// Without a credential the authorizer refuses: the route exists.
				call(t, method, s.URL+path, "", nil).want(t, 401)
				// With one, the function answers (404/405/400 come from functions, not the gateway).
				r := call(t, method, s.URL+path, admin, "{}")
				if r.status == 404 && r.raw == `{"message":"Not Found"}` {
					t.Errorf("%s %s is not routed to %s", method, path, id)
				}
			case "DynamoDB":
				subscriptions++
			}
		}
	}
	if routes < 10 {
		t.Fatalf("only %d routes found in the template", routes)
	}
	if got := len(s.Subscriptions()); got != subscriptions {
		t.Fatalf("%d subscriptions running, the template declares %d", got, subscriptions)
	}
	call(t, "GET", s.URL+"/no/such/route", admin, nil).want(t, 404)
}

// TestRefusesUnsupportedTemplate: a template feature the stack does not understand stops it
// at start-up with a message naming the feature.
func TestRefusesUnsupportedTemplate(t *testing.T) {
	raw, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ old, new, want string }{
		"ResourceType":     {"  Table:\n    Type: AWS::DynamoDB::Table", "  Queue2:\n    Type: AWS::SNS::Topic\n  Table:\n    Type: AWS::DynamoDB::Table", "AWS::SNS::Topic"},
		"EventType":        {"          Type: Api\n", "          Type: HttpApi\n", "HttpApi"},
		"TableProperty":    {"      BillingMode: PAY_PER_REQUEST", "      BillingMode: PAY_PER_REQUEST\n      GlobalSecondaryIndexes: []", "GlobalSecondaryIndexes"},
		"FunctionProperty": {"      Description: Creates a service account.", "      Description: Creates a service account.\n      Layers: [arn:aws:lambda:us-east-1:1:layer:x:1]", "Layers"},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(string(raw), tc.old) {
				t.Fatalf("template.yaml no longer contains %q", tc.old)
			}
			path := filepath.Join(t.TempDir(), "template.yaml")
			if err := os.WriteFile(path, []byte(strings.Replace(string(raw), tc.old, tc.new, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			s, err := local.Start(context.Background(), ln, local.Options{Template: path})
			if err == nil {
				s.Close()
				t.Fatal("the stack started with an unsupported template")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestThrottling: the stage's MethodSettings throttle applies, and its Gateway Response is 429.
func TestThrottling(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := local.Start(context.Background(), ln, local.Options{
		Template: "../../template.yaml",
		Params:   map[string]string{"ApiThrottlingRateLimit": "1", "ApiThrottlingBurstLimit": "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	call(t, "GET", s.URL+"/v1/whoami", "", nil).want(t, 401)
	call(t, "GET", s.URL+"/v1/whoami", "", nil).want(t, 401)
	r := call(t, "GET", s.URL+"/v1/whoami", "", nil).want(t, 429)
	if r.body["message"] != "Too Many Requests" {
		t.Fatalf("429 body %s", r.raw)
	}
}
