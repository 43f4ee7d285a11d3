// Package functions_test runs the functions' real bootstrap binaries under the Lambda Runtime
// Interface Emulator, the way Lambda runs them, against minidyn and a Secrets Manager endpoint.
package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/config"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/secrets/secretstest"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/testworld"
)

const cursorSecretID = "opentrace/cursor"

// buildBootstrap builds a function exactly as deployed (static, lambda.norpc, trimpath,
// stripped) but for this machine's architecture, so the emulator can run it.
func buildBootstrap(t *testing.T, fn string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, "./"+fn)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", fn, err, b)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startFunction runs fn's bootstrap under the emulator with env and returns its invoke URL.
func startFunction(t *testing.T, fn string, env []string) string {
	t.Helper()
	bootstrap := buildBootstrap(t, fn)
	addr := freeAddr(t)
	rie := testkit.Installed(t, "the Lambda Runtime Interface Emulator", "AWS_LAMBDA_RIE", "../.bin/aws-lambda-rie")
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", freeAddr(t), bootstrap)
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("emulator output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulator did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + addr + "/2015-03-31/functions/function/invocations"
}

// invoke sends event to the function the emulator serves at url and decodes its result, a T.
func invoke[T any](t *testing.T, url string, event any) T {
	t.Helper()
	body, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out T
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("invoke: HTTP %d, %v", resp.StatusCode, err)
	}
	return out
}

// loadEvent reads an events/ fixture: the same files `sam local invoke` uses.
func loadEvent(t *testing.T, name string) events.APIGatewayProxyRequest {
	t.Helper()
	return testkit.LoadEvent(t, filepath.Join("..", "events", name+".json"))
}

// TestListUnderRuntimeEmulator starts the list function's bootstrap under the emulator, with
// its configuration in the environment as template.yaml sets it (the cursor secret, not the
// pepper) and its AWS endpoints pointed at minidyn and a Secrets Manager endpoint, and invokes
// it with events/ fixtures.
func TestListUnderRuntimeEmulator(t *testing.T) {
	ctx := context.Background()
	db := dynamotest.Start(t)
	smURL := secretstest.Serve(t, cursorSecretID, strings.Repeat("c", 64))

	// Seed an account in the fixtures' org.
	svc := testworld.Service(t, db, testworld.Pepper)
	acct, _, err := svc.Create(ctx, "org_acme", "user_admin", sa.CreateInput{Name: "claude-code-dev-team"})
	if err != nil {
		t.Fatal(err)
	}

	url := startFunction(t, "list", []string{
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL_DYNAMODB=" + db.URL, "AWS_ENDPOINT_URL_SECRETS_MANAGER=" + smURL,
		config.EnvTable + "=" + db.Table, config.EnvCursorSecret + "=" + cursorSecretID,
		config.EnvMaxActiveTokens + "=10", config.EnvLogLevel + "=info",
	})

	resp := invoke[events.APIGatewayProxyResponse](t, url, loadEvent(t, "list"))
	var page struct {
		Items []struct {
			ID, Name string
		}
		NextCursor *string
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(resp.Body), &page) != nil ||
		len(page.Items) != 1 || page.Items[0].ID != acct.ID || page.Items[0].Name != acct.Name || page.NextCursor != nil {
		t.Fatalf("list: %d %s", resp.StatusCode, resp.Body)
	}

	get := loadEvent(t, "get") // its saId names no account
	resp = invoke[events.APIGatewayProxyResponse](t, url, get)
	if resp.StatusCode != 404 || resp.Headers["Content-Type"] != "application/problem+json" {
		t.Fatalf("get unknown: %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
	}
}
