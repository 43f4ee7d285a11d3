package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/authorizer"
	"github.com/opentrace/service-accounts/pkg/config"
	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/dynamolocal"
	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/token"
)

const (
	coldTable    = "service-accounts-bench"
	coldSecretID = "opentrace/pepper"
	coldOrg      = "org_bench"
)

// probe wraps a local endpoint and notes when its first API request since reset arrived and
// when its answer was written, on this process's monotonic clock, which also times the
// invocation. A GET is a cold start opening its connection early (wire.AWS.Warm), answered as
// DynamoDB answers it and not counted as a request.
type probe struct {
	h       http.Handler
	mu      sync.Mutex
	in, out time.Time
	updates int // UpdateItem requests since reset
}

func (p *probe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("healthy: dynamodb.local"))
		return
	}
	in := time.Now()
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".UpdateItem") {
		p.mu.Lock()
		p.updates++
		p.mu.Unlock()
	}
	p.h.ServeHTTP(w, r)
	out := time.Now()
	p.mu.Lock()
	if p.in.IsZero() {
		p.in, p.out = in, out
	}
	p.mu.Unlock()
}

func (p *probe) reset() {
	p.mu.Lock()
	p.in, p.out, p.updates = time.Time{}, time.Time{}, 0
	p.mu.Unlock()
}

func (p *probe) first() (in, out time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.in, p.out
}

func (p *probe) updateCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.updates
}

// secretsManager answers GetSecretValue for one secret at once (AWS JSON 1.1), as
// pkg/secrets/secretstest does for tests.
func secretsManager(secretString string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ SecretId string }
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || json.NewDecoder(r.Body).Decode(&in) != nil || in.SecretId != coldSecretID {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": "ResourceNotFoundException", "message": "no such secret"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + coldSecretID, "Name": coldSecretID,
			"SecretString": secretString, "VersionId": "v1", "CreatedDate": 1.7e9,
		})
	})
}

// coldSample is one cold start: from sending the first invocation to the emulator (which only
// then starts the runtime) to its answer, with the emulator's own view of it and, for the
// authorizer, when its Secrets Manager and DynamoDB requests reached their endpoints.
type coldSample struct {
	total                         time.Duration
	initMS, invokeMS              float64 // the emulator's INIT REPORT and first INVOKE RTDONE
	secretIn, secretOut, firstDDB time.Duration
	warm                          []time.Duration // warm invocations, as the client saw them
	warmMS                        []float64       // and as the emulator timed them
}

type coldResult struct {
	samples map[string][]coldSample // by function: hello, sdkhello, authorizer
	sizes   map[string]int64        // host-arch binaries actually started
	items   []itemSize              // the items the service wrote for the token used
}

var (
	initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	invokeDone = regexp.MustCompile(`INVOKE RTDONE\(status: success, produced bytes: \d+, duration: ([0-9.]+)ms\)`)
)

// coldStarts measures the two baselines (hello world; the SDK hello, a DynamoDB client and one
// GetItem) and the authorizer, each built as deployed for this machine's architecture, under
// the emulator, in rotating order.
func coldStarts(o options) (*coldResult, error) {
	ctx := context.Background()
	rie, err := filepath.Abs(o.rie)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(rie); err != nil {
		return nil, fmt.Errorf("the Lambda Runtime Interface Emulator is not at %s (make bench installs it): %w", rie, err)
	}

	// DynamoDB (minidyn) and Secrets Manager, local, each behind a probe.
	ddb := &probe{h: dynamolocal.New()}
	ddbSrv := httptest.NewServer(ddb)
	defer ddbSrv.Close()
	key := strings.Repeat("k", 48)
	sm := &probe{h: secretsManager(`{"currentVersion":"1","current":"` + key + `"}`)}
	smSrv := httptest.NewServer(sm)
	defer smSrv.Close()

	// A live token, issued through the same wiring the functions use.
	client := dynamotest.NewClient(ddbSrv.URL, nil)
	if _, err := client.CreateTable(ctx, dynamo.TableDefinition(coldTable)); err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	pepper := token.Pepper{Version: "1", Key: []byte(key)}
	src, err := secrets.NewStatic(secrets.Ring{Current: pepper})
	if err != nil {
		return nil, err
	}
	store := dynamo.NewUnsigned(client, coldTable)
	svc := sa.NewService(store, secrets.Peppers{Source: src})
	acct, _, err := svc.Create(ctx, coldOrg, "user_admin", sa.CreateInput{Name: "cold-start-bench"})
	if err != nil {
		return nil, err
	}
	_, secret, err := svc.GenerateToken(ctx, coldOrg, acct.ID, "user_admin", sa.GenerateInput{})
	if err != nil {
		return nil, err
	}
	hasher, err := token.NewHasher(pepper)
	if err != nil {
		return nil, err
	}
	credKey := dynamo.CredentialKey(hasher.Hash(secret))
	// Every cold start serves a token last used a day ago, as the first request after a quiet
	// spell does: one consistent GetItem and one lastUsedAt write.
	forgetLastUse := func() error {
		_, err := client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(coldTable), Key: credKey, UpdateExpression: aws.String("SET lastUsedAt = :old"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":old": &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(-24*time.Hour).UnixMilli(), 10)},
			},
		})
		return err
	}
	authEvent, _ := json.Marshal(map[string]string{
		"type": "TOKEN", "authorizationToken": "Bearer " + secret,
		"methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123def4/dev/GET/v1/whoami",
	})

	home, err := os.MkdirTemp("", "bench-home-") // no ~/.aws, as in Lambda
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	env := []string{
		"HOME=" + home, "AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_SESSION_TOKEN=bench",
		"AWS_ENDPOINT_URL_DYNAMODB=" + ddbSrv.URL, "AWS_ENDPOINT_URL_SECRETS_MANAGER=" + smSrv.URL,
		config.EnvTable + "=" + coldTable, config.EnvPepperSecret + "=" + coldSecretID,
		config.EnvMaxActiveTokens + "=10", config.EnvMaxAccountsPerOrg + "=1000", config.EnvMaxTokenLifetime + "=0",
		config.EnvLastUsedIntervalS + "=60", config.EnvLogLevel + "=info",
		// The JWKS is fetched only for a user JWT, never here; template.yaml sets these.
		authorizer.EnvIssuer + "=https://issuer.bench.invalid", authorizer.EnvJWKSURL + "=http://127.0.0.1:9/jwks.json",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		// The SDK hello reads the token's credential, as the authorizer's first request does.
		"BENCH_KEY_PK=" + credKey["pk"].(*types.AttributeValueMemberS).Value,
		"BENCH_KEY_SK=" + credKey["sk"].(*types.AttributeValueMemberS).Value,
	}

	res := &coldResult{samples: map[string][]coldSample{}, sizes: map[string]int64{}}
	type fn struct {
		name, bin string
		event     []byte
		check     func([]byte) bool
	}
	allowed := func(b []byte) bool {
		return bytes.Contains(b, []byte(`"Effect":"Allow"`)) && bytes.Contains(b, []byte(acct.ID))
	}
	fns := []fn{
		{"hello", "hello", []byte(`{}`), func(b []byte) bool { return string(b) == `"hello"` }},
		{"sdkhello", "sdkhello", []byte(`{}`), func(b []byte) bool { return string(b) == `"item"` }},
		{"authorizer", "authorizer", authEvent, allowed},
	}
	for i := range fns {
		if fns[i].bin, err = filepath.Abs(hostBinary(o, fns[i].bin)); err != nil {
			return nil, err
		}
		if st, err := os.Stat(fns[i].bin); err == nil {
			res.sizes[fns[i].name] = st.Size()
		}
	}
	// One round first, not counted: the binaries into the page cache. Then each round starts
	// with the next function, so none always goes first.
	for i := -1; i < o.coldStarts; i++ {
		for j := range fns {
			f := fns[(max(i, 0)+j)%len(fns)]
			if err := forgetLastUse(); err != nil {
				return nil, err
			}
			ddb.reset()
			sm.reset()
			s, err := coldStart(rie, f.bin, env, f.event, f.check, o.warm)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			if f.name == "authorizer" {
				in, out := sm.first()
				d, _ := ddb.first()
				if in.IsZero() || d.IsZero() {
					return nil, fmt.Errorf("%s: the secret (%v) or DynamoDB (%v) was never read", f.name, in, d)
				}
				if n := ddb.updateCount(); n != 1 {
					return nil, fmt.Errorf("%s: %d lastUsedAt writes in a cold start and its warm invocations, want 1", f.name, n)
				}
				s.secretIn, s.secretOut, s.firstDDB = in.Sub(s.t0), out.Sub(s.t0), d.Sub(s.t0)
			}
			if i >= 0 {
				res.samples[f.name] = append(res.samples[f.name], s.coldSample)
			}
		}
	}
	// The table now holds what the service wrote for one account and token, the credential
	// with its last use: their sizes are what DynamoDB bills reads and writes by.
	if res.items, err = itemSizes(ctx, client); err != nil {
		return nil, err
	}
	return res, nil
}

type timedSample struct {
	coldSample
	t0 time.Time
}

// coldStart starts the emulator with bootstrap, sends the first invocation (the emulator then
// starts the runtime) and warm ones after it, and stops it.
func coldStart(rie, bootstrap string, env []string, event []byte, check func([]byte) bool, warm int) (timedSample, error) {
	addr, err := freeAddr()
	if err != nil {
		return timedSample{}, err
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return timedSample{}, err
	}
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", apiAddr, bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = env
	logs := &testkit.Buffer{} // the emulator's output, read while it runs
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return timedSample{}, err
	}
	defer stopEmulator(cmd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return timedSample{}, fmt.Errorf("the emulator did not listen on %s:\n%s", addr, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	hc := &http.Client{Timeout: 10 * time.Second}
	invoke := func() (time.Duration, error) {
		start := time.Now()
		resp, err := hc.Post(url, "application/json", bytes.NewReader(event))
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil || resp.StatusCode != 200 || !check(body) {
			return 0, fmt.Errorf("invoke: HTTP %d %s %v\n%s", resp.StatusCode, body, err, logs.String())
		}
		return d, nil
	}
	var s timedSample
	s.t0 = time.Now()
	if s.total, err = invoke(); err != nil {
		return s, err
	}
	for range warm {
		d, err := invoke()
		if err != nil {
			return s, err
		}
		s.warm = append(s.warm, d)
	}
	// The emulator logs a report line after it answers: wait for all of them.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if len(invokeDone.FindAllStringSubmatch(logs.String(), -1)) >= warm+1 {
			break
		}
	}
	out := logs.String()
	if m := initReport.FindStringSubmatch(out); m != nil {
		s.initMS, _ = strconv.ParseFloat(m[1], 64)
	}
	for i, m := range invokeDone.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		if i == 0 {
			s.invokeMS = v
		} else {
			s.warmMS = append(s.warmMS, v)
		}
	}
	return s, nil
}

// stopEmulator stops the emulator, which stops its runtime; then anything left of its process
// group (the emulator and the runtime it started, nothing else).
func stopEmulator(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the runtime, should it outlive the emulator
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func pick(ss []coldSample, f func(coldSample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	return median(v)
}

func pickAll(ss []coldSample, f func(coldSample) []float64) float64 {
	var v []float64
	for _, s := range ss {
		v = append(v, f(s)...)
	}
	return median(v)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *coldResult) addRows(t *table) {
	hello, auth := r.samples["hello"], r.samples["authorizer"]
	s := fmt.Sprintf("cold start (emulator, %d× each, rotating order)", len(hello))
	total := func(c coldSample) float64 { return ms(c.total) }
	initMS := func(c coldSample) float64 { return c.initMS }
	helloTotal, authTotal := pick(hello, total), pick(auth, total)
	t.add(s, "hello world: first invocation answered", fmt.Sprintf("%.1f ms", helloTotal),
		fmt.Sprintf("emulator init %.1f ms; %.1f MB %s binary", pick(hello, initMS), mb(r.sizes["hello"]), hostArch()))
	t.add(s, "authorizer: first invocation answered", fmt.Sprintf("%.1f ms", authTotal),
		fmt.Sprintf("emulator init %.1f ms, first invoke %.1f ms (GetItem + lastUsedAt write); %.1f MB %s binary",
			pick(auth, initMS), pick(auth, func(c coldSample) float64 { return c.invokeMS }), mb(r.sizes["authorizer"]), hostArch()))
	in := pick(auth, func(c coldSample) float64 { return ms(c.secretIn) })
	window := pick(auth, func(c coldSample) float64 { return ms(c.secretOut - c.secretIn) })
	ddb := pick(auth, func(c coldSample) float64 { return ms(c.firstDDB) })
	t.add(s, "authorizer: invoke sent → secret request arrives", fmt.Sprintf("%.1f ms", in),
		fmt.Sprintf("process start, Go init, config, AWS SDK set-up (%.2f× hello world's whole cold start)", in/helloTotal))
	t.add(s, "authorizer: secret read, at the endpoint (answers at once)", fmt.Sprintf("%.2f ms", window),
		fmt.Sprintf("%.1f%% of the cold start; on AWS add one GetSecretValue round trip", 100*window/authTotal))
	t.add(s, "authorizer: invoke sent → first DynamoDB request", fmt.Sprintf("%.1f ms", ddb), "")
	t.addGoal(s, "authorizer ÷ hello world, without the secret read",
		goal{name: "coldstart_ratio_authorizer_hello", value: (authTotal - window) / helloTotal, op: "<=", target: 1.5, format: "%.2f"}, "",
		fmt.Sprintf("with it: %.2f", authTotal/helloTotal))
	sdk := r.samples["sdkhello"]
	sdkTotal := pick(sdk, total)
	t.add(s, "SDK hello: first invocation answered", fmt.Sprintf("%.1f ms", sdkTotal),
		fmt.Sprintf("a DynamoDB client and one GetItem; emulator init %.1f ms; %.1f MB %s binary", pick(sdk, initMS), mb(r.sizes["sdkhello"]), hostArch()))
	t.addGoal(s, "authorizer ÷ SDK hello", goal{name: "coldstart_ratio_authorizer_sdkhello", value: authTotal / sdkTotal, op: "<=", target: 1.15, format: "%.2f"}, "",
		"the authorizer also reads its secret at init and writes the token's last use")
	warm := func(c coldSample) []float64 {
		v := make([]float64, len(c.warm))
		for i, d := range c.warm {
			v[i] = ms(d)
		}
		return v
	}
	t.add(s, "authorizer warm invocation", fmt.Sprintf("%.2f ms", pickAll(auth, warm)),
		fmt.Sprintf("client-side, median of %d; the emulator's duration %.2f ms; hello world warm %.2f ms",
			len(auth)*len(auth[0].warm), pickAll(auth, func(c coldSample) []float64 { return c.warmMS }), pickAll(hello, warm)))
	for _, it := range r.items {
		t.add("DynamoDB item sizes (as the service writes them)", it.kind, fmt.Sprintf("%d B", it.bytes), "")
	}
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// itemSize is one item's size by DynamoDB's sizing rule, named by its key layout.
type itemSize struct {
	kind  string
	bytes int
}

// itemSizes scans the table and sizes each item as DynamoDB does: every attribute's name in
// UTF-8 bytes plus its value: a string's UTF-8 bytes, a number's significant digits halved
// plus one, 1 for a boolean or null, and 3 plus 1 per element for a list or map.
func itemSizes(ctx context.Context, client *dynamodb.Client) ([]itemSize, error) {
	out, err := client.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(coldTable)})
	if err != nil {
		return nil, err
	}
	var sizes []itemSize
	for _, it := range out.Items {
		pk, _ := it["pk"].(*types.AttributeValueMemberS)
		sk, _ := it["sk"].(*types.AttributeValueMemberS)
		if pk == nil || sk == nil {
			continue
		}
		// Items are told apart by their type attribute, not by the key layout, which is
		// pkg/dynamo's alone.
		typ, _ := it["type"].(*types.AttributeValueMemberS)
		kind := "org counter (no type)"
		switch {
		case typ == nil:
		case typ.Value == "credential":
			kind = "credential, read by every authorization"
		case typ.Value == "event":
			kind = "audit-trail event"
			if action, _ := it["action"].(*types.AttributeValueMemberS); action != nil {
				kind = "audit-trail event " + action.Value
			}
		default:
			kind = typ.Value
		}
		sizes = append(sizes, itemSize{kind, avMapSize(it)})
	}
	slices.SortFunc(sizes, func(a, b itemSize) int { return strings.Compare(a.kind, b.kind) })
	return sizes, nil
}

func avMapSize(m map[string]types.AttributeValue) int {
	n := 0
	for k, v := range m {
		n += len(k) + avSize(v)
	}
	return n
}

func avSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		digits := strings.Trim(strings.NewReplacer("-", "", ".", "").Replace(v.Value), "0")
		return (len(digits)+1)/2 + 1
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + avSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + avSize(e)
		}
		return n
	case *types.AttributeValueMemberSS:
		n := 0
		for _, e := range v.Value {
			n += len(e)
		}
		return n
	}
	return 0
}
