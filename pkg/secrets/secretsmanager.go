package secrets

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

const (
	// DefaultTTL is how long SecretsManager serves a keyring before reading the secret again. It
	// bounds how long a rotation takes to reach every warm Lambda.
	DefaultTTL = 5 * time.Minute

	// DefaultMaxStale is how old a keyring SecretsManager will still serve while Secrets Manager
	// cannot be read. Past it, a key that may have been rotated out because it leaked is no
	// longer trusted, and callers get an error instead.
	DefaultMaxStale = time.Hour

	// retryInterval spaces out refresh attempts while a stale keyring is being served, so that an
	// outage costs one slow, retried call per interval rather than one per request.
	retryInterval = 30 * time.Second

	// fetchTimeout bounds a refresh, which runs detached from the context of the caller that
	// started it so that one caller giving up does not fail the others waiting on it.
	fetchTimeout = 10 * time.Second
)

// GetSecretValueAPI is the part of the Secrets Manager client that SecretsManager uses;
// *secretsmanager.Client satisfies it.
type GetSecretValueAPI interface {
	GetSecretValue(ctx context.Context, params *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// SecretsManager is a Source that reads the secret from AWS Secrets Manager and caches its
// keyring in process, so that warm Lambda invocations do not call Secrets Manager. It is safe for
// concurrent use: callers that find the cache expired share one GetSecretValue call.
type SecretsManager struct {
	client   GetSecretValueAPI
	secretID string
	ttl      time.Duration
	maxStale time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu        sync.Mutex
	keyring   Keyring
	fetchedAt time.Time // zero until the first successful read
	retryAt   time.Time // after a failed refresh, the stale keyring is served until then
	inflight  *flight
}

// flight is one GetSecretValue call that any number of callers wait on.
type flight struct {
	done    chan struct{}
	keyring Keyring // set before done is closed
	err     error   // set before done is closed
}

// Option configures a SecretsManager.
type Option func(*SecretsManager)

// WithTTL sets how long a keyring is served from the cache before the secret is read again; the
// default is DefaultTTL. A TTL of zero or less reads the secret on every call.
func WithTTL(d time.Duration) Option {
	return func(s *SecretsManager) { s.ttl = max(d, 0) }
}

// WithMaxStale sets how old a cached keyring may be and still be served while refreshing it
// fails; the default is DefaultMaxStale. A value no greater than the TTL means a failed refresh
// is always an error.
func WithMaxStale(d time.Duration) Option {
	return func(s *SecretsManager) { s.maxStale = max(d, 0) }
}

// WithClock sets the clock used for the TTL and max staleness, so tests need not sleep; the
// default is time.Now, which a nil now also selects.
func WithClock(now func() time.Time) Option {
	return func(s *SecretsManager) {
		if now != nil {
			s.now = now
		}
	}
}

// WithLogger sets the logger that records a failed refresh while a stale keyring is served,
// which is otherwise invisible to callers; the default is slog.Default at the time of logging.
func WithLogger(l *slog.Logger) Option {
	return func(s *SecretsManager) { s.logger = l }
}

// NewSecretsManager returns a SecretsManager that reads secretID, a secret name or ARN, with
// client. It makes no call until the first Keyring.
func NewSecretsManager(client GetSecretValueAPI, secretID string, opts ...Option) *SecretsManager {
	s := &SecretsManager{
		client:   client,
		secretID: secretID,
		ttl:      DefaultTTL,
		maxStale: DefaultMaxStale,
		now:      time.Now,
	}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Keyring returns the cached keyring while it is younger than the TTL, and otherwise reads the
// secret again. When that read fails, or the secret is invalid, it keeps serving the cached
// keyring until it is older than the max staleness, and then returns the error: it fails closed
// rather than trust a key that may have been rotated out. With nothing cached, any failure is an
// error. An invalid secret yields an error wrapping ErrInvalidKeyring; a client error is wrapped,
// so errors.As finds the SDK's error types. It also returns an error when ctx ends while waiting
// for the read, which carries on for the callers still waiting.
func (s *SecretsManager) Keyring(ctx context.Context) (Keyring, error) {
	s.mu.Lock()
	if kr, ok := s.cached(s.now()); ok {
		s.mu.Unlock()
		return kr, nil
	}
	r := s.inflight
	if r == nil {
		r = &flight{done: make(chan struct{})}
		s.inflight = r
		go s.refresh(context.WithoutCancel(ctx), r)
	}
	s.mu.Unlock()

	select {
	case <-r.done:
		return r.keyring, r.err
	case <-ctx.Done():
		return Keyring{}, fmt.Errorf("pepper secret %q: waiting for refresh: %w", s.secretID, context.Cause(ctx))
	}
}

// cached returns the keyring that may be served at now without a refresh. s.mu must be held.
func (s *SecretsManager) cached(now time.Time) (Keyring, bool) {
	if s.fetchedAt.IsZero() {
		return Keyring{}, false
	}
	age := now.Sub(s.fetchedAt)
	if age < s.ttl || (now.Before(s.retryAt) && age <= s.maxStale) {
		return s.keyring, true
	}
	return Keyring{}, false
}

// refresh reads the secret, updates the cache and settles r for everyone waiting on it.
func (s *SecretsManager) refresh(ctx context.Context, r *flight) {
	fetchCtx, cancel := context.WithTimeout(ctx, fetchTimeout)
	kr, err := s.fetch(fetchCtx)
	cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(r.done)
	s.inflight = nil
	now := s.now()
	if err == nil {
		s.keyring, s.fetchedAt, s.retryAt = kr, now, time.Time{}
		r.keyring = kr
		return
	}
	if s.fetchedAt.IsZero() {
		r.err = err
		return
	}
	age := now.Sub(s.fetchedAt)
	if age > s.maxStale {
		r.err = fmt.Errorf("%w (cached keyring is %s old, past the %s max staleness)", err, age, s.maxStale)
		return
	}
	s.retryAt = now.Add(min(s.ttl, retryInterval))
	s.log().WarnContext(ctx, "serving stale pepper keyring: refresh failed",
		slog.String("secret", s.secretID), slog.Duration("age", age), slog.Any("error", err))
	r.keyring = s.keyring
}

func (s *SecretsManager) fetch(ctx context.Context) (Keyring, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.secretID)})
	if err != nil {
		// The SDK's error carries the request and the service's message, never a secret value.
		return Keyring{}, fmt.Errorf("pepper secret %q: %w", s.secretID, err)
	}
	if out.SecretString == nil {
		return Keyring{}, fmt.Errorf("pepper secret %q: %w: secret has no SecretString", s.secretID, ErrInvalidKeyring)
	}
	kr, err := Parse([]byte(*out.SecretString))
	if err != nil {
		return Keyring{}, fmt.Errorf("pepper secret %q: %w", s.secretID, err)
	}
	return kr, nil
}

func (s *SecretsManager) log() *slog.Logger {
	if s.logger != nil {
		return s.logger
	}
	return slog.Default()
}

// String names the secret and nothing else.
func (s *SecretsManager) String() string {
	return "secrets.SecretsManager(" + strconv.Quote(s.secretID) + ")"
}

// Format implements fmt.Formatter so that printing a SecretsManager shows String under every
// verb: fmt's field-by-field printing would reach the cached keys and read the mutex-guarded
// cache without the lock.
func (s *SecretsManager) Format(f fmt.State, _ rune) {
	fmt.Fprint(f, s.String())
}

// LogValue implements slog.LogValuer so that log lines record only the secret's id.
func (s *SecretsManager) LogValue() slog.Value {
	return slog.GroupValue(slog.String("secret", s.secretID))
}

// ReadKey reads a secret that holds one key, as CloudFormation's GenerateSecretString writes it
// without a template: the key that signs pagination cursors, the identity provider's webhook
// signing secret. The key must be at least 32 bytes.
func ReadKey(ctx context.Context, client GetSecretValueAPI, secretID string) ([]byte, error) {
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretID)})
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", secretID, err)
	}
	if out.SecretString == nil || len(*out.SecretString) < minKeyLen {
		return nil, fmt.Errorf("secret %q: want a key of at least %d bytes in SecretString", secretID, minKeyLen)
	}
	return []byte(*out.SecretString), nil
}
