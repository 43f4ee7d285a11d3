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
	"github.com/opentrace/service-accounts/pkg/testworld"
)

const cursorSecretID = "opentrace/cursor"

// rie returns the emulator binary: $AWS_LAMBDA_RIE, or the one `make` installs into .bin.
func rie(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AWS_LAMBDA_RIE")
	if path == "" {
		path, _ = filepath.Abs("../.bin/aws-lambda-rie")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the Lambda Runtime Interface Emulator is not installed at %s: run `make test`, which installs it (%v)", path, err)
	}
	return path
}

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
	cmd := exec.Command(rie(t), "--runtime-interface-emulator-address", addr, "--runtime-api-address", freeAddr(t), bootstrap)
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

func invoke(t *testing.T, url string, event any) events.APIGatewayProxyResponse {
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
	var out events.APIGatewayProxyResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("invoke: HTTP %d, %v", resp.StatusCode, err)
	}
	return out
}

func loadEvent(t *testing.T, name string) events.APIGatewayProxyRequest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "events", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayProxyRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
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

	resp := invoke(t, url, loadEvent(t, "list"))
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
	resp = invoke(t, url, get)
	if resp.StatusCode != 404 || resp.Headers["Content-Type"] != "application/problem+json" {
		t.Fatalf("get unknown: %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
	}
}
