package secrets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/opentrace/service-accounts/pkg/secrets"
)

const testSecretID = "opentrace/token-pepper"

// smResponse is what the test server answers to GetSecretValue.
type smResponse struct {
	status int
	body   string
}

func okSecret(secretString string) smResponse {
	b, _ := json.Marshal(map[string]any{
		"ARN":           "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + testSecretID + "-AbCdEf",
		"Name":          testSecretID,
		"SecretString":  secretString,
		"VersionId":     "3f1b6a52-0000-4000-8000-000000000001",
		"VersionStages": []string{"AWSCURRENT"},
		"CreatedDate":   1735689600,
	})
	return smResponse{status: http.StatusOK, body: string(b)}
}

func smError(status int, typ, msg string) smResponse {
	b, _ := json.Marshal(map[string]string{"__type": typ, "message": msg})
	return smResponse{status: status, body: string(b)}
}

// binarySecret is a secret stored as SecretBinary, which has no SecretString.
var binarySecret = smResponse{status: http.StatusOK, body: `{"ARN":"arn","Name":"` + testSecretID + `","SecretBinary":"YmxvYg==","VersionId":"v"}`}

var (
	serviceDown = smError(http.StatusInternalServerError, "InternalServiceError", "An error occurred on the server side.")
	notFound    = smError(http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
)

// smServer speaks the Secrets Manager JSON 1.1 protocol for GetSecretValue only, so the tests
// exercise the real SDK client: serialization, signing and error decoding.
type smServer struct {
	srv     *httptest.Server
	calls   atomic.Int32
	arrived chan struct{} // one value per request, for tests that must know a call is in progress

	mu   sync.Mutex
	resp smResponse
	hold chan struct{} // when not nil, requests wait until it is closed
}

func newSMServer(t *testing.T) *smServer {
	t.Helper()
	s := &smServer{arrived: make(chan struct{}, 1000), resp: notFound}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *smServer) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	s.arrived <- struct{}{}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	write := func(resp smResponse) {
		w.WriteHeader(resp.status)
		_, _ = w.Write([]byte(resp.body))
	}

	var in struct{ SecretId string }
	switch {
	case r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue":
		write(smError(http.StatusBadRequest, "UnknownOperationException", "unexpected "+r.Method+" "+r.Header.Get("X-Amz-Target")))
		return
	case !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 "):
		write(smError(http.StatusBadRequest, "MissingAuthenticationTokenException", "request is not signed"))
		return
	case json.NewDecoder(r.Body).Decode(&in) != nil:
		write(smError(http.StatusBadRequest, "SerializationException", "bad body"))
		return
	case in.SecretId != testSecretID:
		write(notFound)
		return
	}

	s.mu.Lock()
	resp, hold := s.resp, s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	write(resp)
}

func (s *smServer) set(resp smResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resp = resp
}

// holdRequests makes requests wait until the returned function is called.
func (s *smServer) holdRequests() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hold := make(chan struct{})
	s.hold = hold
	return sync.OnceFunc(func() { close(hold) })
}

// client is a real Secrets Manager client pointed at the test server. Retries are off so that
// every Keyring that reaches the network is exactly one server call.
func (s *smServer) client(t *testing.T) *secretsmanager.Client {
	t.Helper()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(s.srv.URL)
		o.RetryMaxAttempts = 1
	})
}

func TestSecretsManagerKeyring(t *testing.T) {
	v1 := okSecret(secretJSON(t, "currentVersion", "1", "current", keyV1))
	v2 := okSecret(secretJSON(t, "currentVersion", "2", "current", keyV2, "previousVersion", "1", "previous", keyV1))
	invalid := okSecret(`{"currentVersion":"2","current":` + keyV2 + `}`)

	// A step moves the clock, optionally changes what the server answers, calls Keyring once
	// and checks the server calls so far and the result.
	type step struct {
		advance   time.Duration
		respond   *smResponse // nil leaves the server's answer unchanged
		wantCalls int32
		wantCur   string // current version; "" means an error is expected
		wantErr   error  // checked with errors.Is when not nil
		wantErrAs any    // checked with errors.As when not nil
	}
	tests := []struct {
		name  string
		opts  []secrets.Option
		steps []step
	}{
		{
			name: "CacheHitWithinTTL",
			steps: []step{
				{respond: &v1, wantCalls: 1, wantCur: "1"},
				{advance: time.Minute, wantCalls: 1, wantCur: "1"},
				{advance: secrets.DefaultTTL - time.Minute - time.Nanosecond, wantCalls: 1, wantCur: "1"},
			},
		},
		{
			name: "RefreshAfterTTL",
			steps: []step{
				{respond: &v1, wantCalls: 1, wantCur: "1"},
				{advance: secrets.DefaultTTL, respond: &v2, wantCalls: 2, wantCur: "2"},
				{advance: time.Minute, wantCalls: 2, wantCur: "2"},
			},
		},
		{
			name: "RefreshFailureWithinMaxStaleServesCached",
			steps: []step{
				{respond: &v1, wantCalls: 1, wantCur: "1"},
				{advance: secrets.DefaultTTL, respond: &serviceDown, wantCalls: 2, wantCur: "1"},
				// Right after a failure the stale keyring is served without another call.
				{advance: 10 * time.Second, wantCalls: 2, wantCur: "1"},
				{advance: 30 * time.Second, wantCalls: 3, wantCur: "1"},
				{advance: 30 * time.Second, respond: &v2, wantCalls: 4, wantCur: "2"},
				{advance: time.Minute, wantCalls: 4, wantCur: "2"},
			},
		},
		{
			name: "InvalidSecretOnRefreshServesCached",
			steps: []step{
				{respond: &v1, wantCalls: 1, wantCur: "1"},
				{advance: secrets.DefaultTTL, respond: &invalid, wantCalls: 2, wantCur: "1"},
				{advance: secrets.DefaultMaxStale, wantCalls: 3, wantErr: secrets.ErrInvalidKeyring},
			},
		},
		{
			name: "BeyondMaxStaleFailsClosed",
			steps: []step{
				{respond: &v1, wantCalls: 1, wantCur: "1"},
				{advance: secrets.DefaultTTL, respond: &serviceDown, wantCalls: 2, wantCur: "1"},
				{advance: secrets.DefaultMaxStale - secrets.DefaultTTL, wantCalls: 3, wantCur: "1"}, // exactly max stale
				{advance: time.Second, wantCalls: 4, wantErrAs: new(*types.InternalServiceError)},
				// Failing closed is not cached: every call tries again.
				{wantCalls: 5, wantErrAs: new(*types.InternalServiceError)},
				{respond: &v2, wantCalls: 6, wantCur: "2"},
			},
		},
		{
			name: "ConfigurableTTLAndMaxStale",
			opts: []secrets.Option{secrets.WithTTL(time.Minute), secrets.WithMaxStale(2 * time.Minute)},
			steps: []step{
				{respond: &v1, wantCalls: 1, wantCur: "1"},
				{advance: 59 * time.Second, wantCalls: 1, wantCur: "1"},
				{advance: time.Second, respond: &serviceDown, wantCalls: 2, wantCur: "1"},
				{advance: 61 * time.Second, wantCalls: 3, wantErrAs: new(*types.InternalServiceError)},
			},
		},
		{
			name: "ZeroTTLReadsEveryTime",
			opts: []secrets.Option{secrets.WithTTL(0)},
			steps: []step{
				{respond: &v1, wantCalls: 1, wantCur: "1"},
				{wantCalls: 2, wantCur: "1"},
				{respond: &v2, wantCalls: 3, wantCur: "2"},
			},
		},
		{
			name: "ServerErrorOnColdCacheFailsClosed",
			steps: []step{
				{respond: &serviceDown, wantCalls: 1, wantErrAs: new(*types.InternalServiceError)},
				{wantCalls: 2, wantErrAs: new(*types.InternalServiceError)},
				{respond: &v1, wantCalls: 3, wantCur: "1"},
			},
		},
		{
			name: "NotFound",
			steps: []step{
				{respond: &notFound, wantCalls: 1, wantErrAs: new(*types.ResourceNotFoundException)},
			},
		},
		{
			name: "InvalidSecretOnColdCache",
			steps: []step{
				{respond: &invalid, wantCalls: 1, wantErr: secrets.ErrInvalidKeyring},
			},
		},
		{
			name: "BinarySecret",
			steps: []step{
				{respond: &binarySecret, wantCalls: 1, wantErr: secrets.ErrInvalidKeyring},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSMServer(t)
			clock := newFakeClock()
			var logs bytes.Buffer
			opts := append([]secrets.Option{
				secrets.WithClock(clock.Now),
				secrets.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))),
			}, tt.opts...)
			sm := secrets.NewSecretsManager(srv.client(t), testSecretID, opts...)

			for i, st := range tt.steps {
				clock.Advance(st.advance)
				if st.respond != nil {
					srv.set(*st.respond)
				}
				kr, err := sm.Keyring(context.Background())
				if got := srv.calls.Load(); got != st.wantCalls {
					t.Fatalf("step %d: server calls = %d, want %d", i, got, st.wantCalls)
				}
				if st.wantCur == "" {
					if err == nil {
						t.Fatalf("step %d: Keyring = %v, want error", i, kr)
					}
					if st.wantErr != nil && !errors.Is(err, st.wantErr) {
						t.Fatalf("step %d: error %q, want %v", i, err, st.wantErr)
					}
					if st.wantErrAs != nil && !errors.As(err, st.wantErrAs) {
						t.Fatalf("step %d: error %q, want %T", i, err, st.wantErrAs)
					}
					if !strings.Contains(err.Error(), testSecretID) {
						t.Errorf("step %d: error %q does not name the secret", i, err)
					}
					assertNoLeak(t, "error", err.Error())
					continue
				}
				if err != nil {
					t.Fatalf("step %d: Keyring: %v", i, err)
				}
				if got := kr.Current.Version(); got != st.wantCur {
					t.Fatalf("step %d: current version = %q, want %q", i, got, st.wantCur)
				}
			}
			assertNoLeak(t, "log", logs.String())
		})
	}
}

func TestSecretsManagerStaleIsLogged(t *testing.T) {
	srv := newSMServer(t)
	clock := newFakeClock()
	var logs bytes.Buffer
	sm := secrets.NewSecretsManager(srv.client(t), testSecretID,
		secrets.WithClock(clock.Now), secrets.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))

	srv.set(okSecret(secretJSON(t, "currentVersion", "1", "current", keyV1)))
	if _, err := sm.Keyring(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(secrets.DefaultTTL)
	srv.set(serviceDown)
	if _, err := sm.Keyring(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"level":"WARN"`, "stale", testSecretID, "InternalServiceError"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %s does not contain %q", logs.String(), want)
		}
	}
	assertNoLeak(t, "log", logs.String())
}

func TestSecretsManagerConcurrentColdCache(t *testing.T) {
	const callers = 50
	srv := newSMServer(t)
	srv.set(okSecret(secretJSON(t, "currentVersion", "1", "current", keyV1)))
	release := srv.holdRequests()
	defer release()
	sm := secrets.NewSecretsManager(srv.client(t), testSecretID, secrets.WithClock(newFakeClock().Now))

	var started, done sync.WaitGroup
	results := make([]secrets.Keyring, callers)
	errs := make([]error, callers)
	for i := range callers {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			results[i], errs[i] = sm.Keyring(context.Background())
		}()
	}
	started.Wait()
	<-srv.arrived
	// The clock is frozen, so a caller that misses the flight finds a fresh cache: the call count
	// is exact however the goroutines are scheduled. The pause only makes joining the flight,
	// the path under test, the likely one.
	time.Sleep(20 * time.Millisecond)
	release()
	done.Wait()

	if got := srv.calls.Load(); got != 1 {
		t.Fatalf("server calls = %d, want 1", got)
	}
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if results[i].Current != results[0].Current {
			t.Fatalf("caller %d got a different keyring", i)
		}
	}
}

func TestSecretsManagerCallerGivingUpDoesNotFailOthers(t *testing.T) {
	srv := newSMServer(t)
	srv.set(okSecret(secretJSON(t, "currentVersion", "1", "current", keyV1)))
	release := srv.holdRequests()
	defer release()
	sm := secrets.NewSecretsManager(srv.client(t), testSecretID, secrets.WithClock(newFakeClock().Now))

	ctx, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := sm.Keyring(ctx)
		firstErr <- err
	}()
	<-srv.arrived
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller error = %v, want context.Canceled", err)
	}

	second := make(chan error, 1)
	go func() {
		_, err := sm.Keyring(context.Background())
		second <- err
	}()
	release()
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if got := srv.calls.Load(); got != 1 {
		t.Fatalf("server calls = %d, want 1", got)
	}
}
