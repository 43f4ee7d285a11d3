package local_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/local"
)

// TestMakeRunOnMoto runs `DYNAMODB_ENDPOINT=<moto> PARAMETER_OVERRIDES="MaxActiveTokens=60"
// make run` as a developer does, on the moto server of `make test`'s moto pass: the README's
// quick start works as written (its last use arriving through moto's stream), and an account
// of 60 tokens, the cap given, is deleted with every one of its tokens refused afterwards.
func TestMakeRunOnMoto(t *testing.T) {
	motoURL := os.Getenv("MOTO_URL")
	if os.Getenv("DYNAMODB_BACKEND") != "moto" || motoURL == "" {
		t.Skip("runs in make test's moto pass (DYNAMODB_BACKEND=moto MOTO_URL=…)")
	}
	// `make run` keeps its table from one run to the next; this run starts from none.
	ctx := context.Background()
	db := dynamodb.New(dynamodb.Options{Region: local.Region, BaseEndpoint: aws.String(motoURL),
		Credentials: credentials.NewStaticCredentialsProvider("moto", "moto", "")})
	if _, err := db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(local.TableName)}); err != nil {
		if _, missing := errors.AsType[*types.ResourceNotFoundException](err); !missing {
			t.Fatal(err)
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command("make", "--no-print-directory", "-C", "../..", "run")
	cmd.Env = append(os.Environ(), "PORT="+port, "DYNAMODB_ENDPOINT="+motoURL, "PARAMETER_OVERRIDES=MaxActiveTokens=60",
		"AWS_ACCESS_KEY_ID=moto", "AWS_SECRET_ACCESS_KEY=moto")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("make run's log:\n%s", logs.String())
		}
	})
	url := "http://127.0.0.1:" + port
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "serving "+url) {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("make run stopped before serving")
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("make run did not serve within 3 minutes")
	}

	script := strings.ReplaceAll(readmeBlock(t, "quickstart"), "http://127.0.0.1:3000", url)
	quick, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	if err != nil || !strings.Contains(string(quick), "\"lastUsedAt\": \"20") || !strings.HasSuffix(strings.TrimSpace(string(quick)), "401") {
		t.Fatalf("the quick start on moto: %v\n%s", err, quick)
	}

	admin := devTokenAt(t, url, "org_moto", "admin", "user_alice")
	api := url + "/orgs/org_moto/service-accounts"
	saID := call(t, "POST", api, admin, map[string]string{"name": "sixty-tokens"}).want(t, 201).body["id"].(string)
	var tokens []string
	for range 60 {
		tokens = append(tokens, call(t, "POST", api+"/"+saID+"/tokens", admin, nil).want(t, 201).body["token"].(string))
	}
	call(t, "POST", api+"/"+saID+"/tokens", admin, nil).want(t, 409) // the cap PARAMETER_OVERRIDES set
	call(t, "GET", url+"/v1/whoami", tokens[59], nil).want(t, 200)
	call(t, "DELETE", api+"/"+saID, admin, nil).want(t, 204)
	for i, tok := range tokens {
		if r := call(t, "GET", url+"/v1/whoami", tok, nil); r.status != 401 {
			t.Fatalf("token %d after the delete: %d %s", i, r.status, r.raw)
		}
	}
	call(t, "GET", api+"/"+saID, admin, nil).want(t, 404)
}
