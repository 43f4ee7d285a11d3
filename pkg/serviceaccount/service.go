package serviceaccount

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/opentrace/service-accounts/pkg/token"
)

// Store persists service accounts and tokens. Implementations must make each write atomic and
// conditional as documented, because the limits and the revocation guarantees rest on it.
type Store interface {
	// CreateServiceAccount stores sa. It fails with ECONFLICT if another account of the org has
	// the same name key, or if the org already holds maxPerOrg accounts.
	CreateServiceAccount(ctx context.Context, sa ServiceAccount, nameKey string, maxPerOrg int) error
	// ListServiceAccounts returns up to limit accounts of orgID, oldest first, from cursor.
	// It fails with EINVALID if the cursor was not issued for this org.
	ListServiceAccounts(ctx context.Context, orgID string, limit int, cursor string) (ServiceAccountPage, error)
	// GetServiceAccount returns one account, or ENOTFOUND.
	GetServiceAccount(ctx context.Context, orgID, saID string) (ServiceAccount, error)
	// DeleteServiceAccount removes the account and every one of its tokens, and returns only
	// once none of them can be used. No token generated meanwhile survives it. A delete
	// interrupted midway is finished by the next writer to the account or by the retry. It
	// fails with ENOTFOUND.
	DeleteServiceAccount(ctx context.Context, orgID, saID, actor string, at time.Time) error
	// CreateToken stores t and its credential. It fails with ENOTFOUND if the account is gone
	// and with ECONFLICT if the account already has maxActive open tokens.
	CreateToken(ctx context.Context, t Token, cred Credential, maxActive int) error
	// ListTokens returns every token of an account that the store still holds, oldest first.
	ListTokens(ctx context.Context, orgID, saID string) ([]Token, error)
	// RevokeToken makes a token unusable and frees its slot, recording token.revoked by actor.
	// Revoking a revoked token succeeds and changes nothing; revoking one retired after expiry
	// records the revocation; an unknown token is ENOTFOUND.
	RevokeToken(ctx context.Context, orgID, saID, tokenID, actor string, at time.Time) error
	// RetireToken closes an expired token and frees its slot, recording token.expired.
	// Retiring a closed token succeeds and changes nothing; an unknown token is ENOTFOUND.
	RetireToken(ctx context.Context, orgID, saID, tokenID, actor string, at time.Time) error
	// LookupToken returns the credential stored under a token hash with a strongly consistent
	// read, or ENOTFOUND.
	LookupToken(ctx context.Context, hash string) (Credential, error)
	// TouchToken sets the credential's last use to at unless it was already set after
	// notBefore; a credential that is gone or already fresh is not an error.
	TouchToken(ctx context.Context, hash string, at, notBefore time.Time) error
	// GetAuditReport returns the latest audit report of orgID, or an empty report (zero
	// GeneratedAt, no findings) if the audit has not reported on the org yet.
	GetAuditReport(ctx context.Context, orgID string) (AuditReport, error)
}

// Peppers supplies the token-hashing keys in force: the current one first, then, during a
// rotation, the previous one.
type Peppers interface {
	Hashers(ctx context.Context) ([]*token.Hasher, error)
}

// Clock tells the time; injected so that expiry and audit rules are tested without sleeping.
type Clock func() time.Time

// Limits are the configurable bounds of the service.
type Limits struct {
	MaxActiveTokens      int           // open tokens per account
	MaxAccountsPerOrg    int           // accounts per organisation
	MaxTokenLifetimeDays int           // 0: tokens may live forever; otherwise the longest allowed
	LastUsedInterval     time.Duration // last use is written at most once per interval per token
}

// DefaultLimits are the product's limits: 10 active tokens per account, 1000 accounts per org,
// no maximum lifetime, last use recorded at most once a minute.
var DefaultLimits = Limits{MaxActiveTokens: 10, MaxAccountsPerOrg: 1000, LastUsedInterval: time.Minute}

// Service implements the use cases.
type Service struct {
	store   Store
	peppers Peppers
	now     Clock
	rand    io.Reader
	limits  Limits

	touchMu sync.Mutex
	touched map[string]time.Time // hash → last write this process made; spares redundant writes

	idMu      sync.Mutex
	idEntropy *ulid.MonotonicEntropy // ids made in one millisecond still sort in creation order
}

// Option adjusts a Service.
type Option func(*Service)

// WithClock sets the clock (default time.Now).
func WithClock(c Clock) Option { return func(s *Service) { s.now = c } }

// WithRand sets the randomness for tokens and ids (default crypto/rand.Reader).
func WithRand(r io.Reader) Option { return func(s *Service) { s.rand = r } }

// WithLimits sets the limits (default DefaultLimits).
func WithLimits(l Limits) Option { return func(s *Service) { s.limits = l } }

// NewService returns a Service over store and peppers.
func NewService(store Store, peppers Peppers, opts ...Option) *Service {
	s := &Service{
		store:   store,
		peppers: peppers,
		now:     time.Now,
		rand:    rand.Reader,
		limits:  DefaultLimits,
		touched: map[string]time.Time{},
	}
	for _, o := range opts {
		o(s)
	}
	s.idEntropy = ulid.Monotonic(s.rand, 0)
	return s
}

// Now returns the service's current time, by which token status is judged.
func (s *Service) Now() time.Time { return s.now() }

// instant is the time recorded for an action: UTC, to the millisecond the store keeps, so
// what a write returns is exactly what a later read shows.
func (s *Service) instant() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// Limits returns the limits in force.
func (s *Service) Limits() Limits { return s.limits }

// CreateInput is the request to create a service account.
type CreateInput struct {
	Name        string
	Description string
}

// Create creates a service account in orgID on behalf of actor and returns it with naming
// advice. Errors: EINVALID (bad name or description), ECONFLICT (name taken, ignoring case, or
// the org's account limit reached).
func (s *Service) Create(ctx context.Context, orgID, actor string, in CreateInput) (ServiceAccount, []Warning, error) {
	if err := checkOrg(orgID); err != nil {
		return ServiceAccount{}, nil, err
	}
	var bad []FieldError
	name, ferr := normalizeName("name", in.Name, true)
	if ferr != nil {
		bad = append(bad, *ferr)
	}
	desc, ferr := validateDescription(in.Description)
	if ferr != nil {
		bad = append(bad, *ferr)
	}
	if len(bad) > 0 {
		return ServiceAccount{}, nil, Invalid(bad...)
	}
	now := s.instant()
	id, err := s.newID("sa_", now)
	if err != nil {
		return ServiceAccount{}, nil, err
	}
	sa := ServiceAccount{
		ID: id, OrgID: orgID, Name: name, Description: desc,
		CreatedAt: now, CreatedBy: actor,
	}
	if err := s.store.CreateServiceAccount(ctx, sa, nameKey(name), s.limits.MaxAccountsPerOrg); err != nil {
		return ServiceAccount{}, nil, err
	}
	return sa, NamingAdvice(name), nil
}

// ListInput is the request for a page of service accounts.
type ListInput struct {
	Limit  int // 0 means DefaultPageSize
	Cursor string
}

// Page sizes for listings.
const (
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// List returns a page of orgID's service accounts, oldest first. Errors: EINVALID (limit out of
// 1–100, or a cursor that is malformed, tampered with or issued for another org).
func (s *Service) List(ctx context.Context, orgID string, in ListInput) (ServiceAccountPage, error) {
	if err := checkOrg(orgID); err != nil {
		return ServiceAccountPage{}, err
	}
	limit := in.Limit
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return ServiceAccountPage{}, Invalid(FieldError{"limit", "must be between 1 and 100"})
	}
	return s.store.ListServiceAccounts(ctx, orgID, limit, in.Cursor)
}

// Get returns one service account of orgID with its tokens. Errors: ENOTFOUND.
func (s *Service) Get(ctx context.Context, orgID, saID string) (ServiceAccount, []Token, error) {
	sa, err := s.getAccount(ctx, orgID, saID)
	if err != nil {
		return ServiceAccount{}, nil, err
	}
	tokens, err := s.store.ListTokens(ctx, orgID, saID)
	if err != nil {
		return ServiceAccount{}, nil, err
	}
	// The stored counter also holds expired tokens not yet retired; the list at hand is exact.
	now := s.now()
	sa.ActiveTokens = 0
	for _, t := range tokens {
		if t.Status(now) == StatusActive {
			sa.ActiveTokens++
		}
	}
	return sa, tokens, nil
}

// Delete deletes a service account of orgID; every token of it stops working at once.
// Errors: ENOTFOUND.
func (s *Service) Delete(ctx context.Context, orgID, saID, actor string) error {
	if err := checkOrg(orgID); err != nil {
		return err
	}
	if !ValidServiceAccountID(saID) {
		return NotFound("service account")
	}
	return s.store.DeleteServiceAccount(ctx, orgID, saID, actor, s.instant())
}

// GenerateInput is the request for a new token.
type GenerateInput struct {
	Name          string
	ExpiresInDays *int // nil: no expiry, unless the limits impose a maximum lifetime
}

// GenerateToken issues a new token for a service account and returns its metadata and the
// token itself, which is never available again. Errors: ENOTFOUND, EINVALID (bad name or
// expiry), ECONFLICT (the account already has the maximum number of active tokens).
func (s *Service) GenerateToken(ctx context.Context, orgID, saID, actor string, in GenerateInput) (Token, string, error) {
	name, ferr := normalizeName("name", in.Name, false)
	if ferr != nil {
		return Token{}, "", Invalid(*ferr)
	}
	days, err := s.lifetime(in.ExpiresInDays)
	if err != nil {
		return Token{}, "", err
	}
	sa, err := s.getAccount(ctx, orgID, saID)
	if err != nil {
		return Token{}, "", err
	}
	hashers, err := s.hashers(ctx)
	if err != nil {
		return Token{}, "", err
	}
	secret, err := token.Generate(s.rand)
	if err != nil {
		return Token{}, "", Internal(fmt.Errorf("generate token: %w", err))
	}
	now := s.instant()
	id, err := s.newID("tok_", now)
	if err != nil {
		return Token{}, "", err
	}
	t := Token{
		ID: id, OrgID: orgID, ServiceAccountID: saID, Name: name, Hint: token.Hint(secret),
		CreatedAt: now, CreatedBy: actor,
		Hash: hashers[0].Hash(secret), PepperVersion: hashers[0].Version(),
	}
	if days > 0 {
		exp := now.AddDate(0, 0, days)
		t.ExpiresAt = &exp
	}
	cred := Credential{
		OrgID: orgID, ServiceAccountID: saID, ServiceAccountName: sa.Name,
		TokenID: id, TokenName: name, ExpiresAt: t.ExpiresAt,
	}
	err = s.store.CreateToken(ctx, t, cred, s.limits.MaxActiveTokens)
	if ErrorCode(err) == ECONFLICT && s.retireExpired(ctx, orgID, saID, actor) {
		err = s.store.CreateToken(ctx, t, cred, s.limits.MaxActiveTokens)
	}
	if err != nil {
		return Token{}, "", err
	}
	return t, secret, nil
}

// retireExpired frees the slots of the account's expired tokens, so that tokens which expired
// on their own never block new ones. It reports whether it freed any.
func (s *Service) retireExpired(ctx context.Context, orgID, saID, actor string) bool {
	tokens, err := s.store.ListTokens(ctx, orgID, saID)
	if err != nil {
		return false
	}
	now := s.instant()
	freed := false
	for _, t := range tokens {
		if t.ClosedAt == nil && t.Status(now) == StatusExpired {
			if s.store.RetireToken(ctx, orgID, saID, t.ID, actor, now) == nil {
				freed = true
			}
		}
	}
	return freed
}

func (s *Service) lifetime(expiresInDays *int) (int, error) {
	max := s.limits.MaxTokenLifetimeDays
	if expiresInDays == nil {
		return max, nil
	}
	d := *expiresInDays
	switch {
	case d < 1 || d > 365:
		return 0, Invalid(FieldError{"expiresInDays", "must be between 1 and 365"})
	case max > 0 && d > max:
		return 0, Invalid(FieldError{"expiresInDays", fmt.Sprintf("must be at most %d (the organisation's maximum token lifetime)", max)})
	}
	return d, nil
}

// ListTokens returns the tokens of a service account, oldest first. Errors: ENOTFOUND.
func (s *Service) ListTokens(ctx context.Context, orgID, saID string) ([]Token, error) {
	if _, err := s.getAccount(ctx, orgID, saID); err != nil {
		return nil, err
	}
	return s.store.ListTokens(ctx, orgID, saID)
}

// RevokeToken revokes a token; it stops working on the very next request. Revoking a revoked
// token succeeds again. Errors: ENOTFOUND.
func (s *Service) RevokeToken(ctx context.Context, orgID, saID, tokenID, actor string) error {
	if err := checkOrg(orgID); err != nil {
		return err
	}
	if !ValidServiceAccountID(saID) || !ValidTokenID(tokenID) {
		return NotFound("token")
	}
	return s.store.RevokeToken(ctx, orgID, saID, tokenID, actor, s.instant())
}

// Authenticate turns a presented service-account token into an identity. It checks the
// token's shape and checksum before any I/O. Errors: EUNAUTHORIZED (malformed, unknown,
// revoked, expired, or its account deleted), EUNAVAILABLE or EINTERNAL when a dependency fails,
// so that a caller which allows only on a nil error fails closed.
func (s *Service) Authenticate(ctx context.Context, presented string) (Identity, error) {
	if err := token.Parse(presented); err != nil {
		return Identity{}, &Error{Code: EUNAUTHORIZED, Message: "Unauthorized", Err: err}
	}
	hashers, err := s.hashers(ctx)
	if err != nil {
		return Identity{}, err
	}
	for _, h := range hashers {
		hash := h.Hash(presented)
		cred, err := s.store.LookupToken(ctx, hash)
		if ErrorCode(err) == ENOTFOUND {
			continue
		}
		if err != nil {
			return Identity{}, err
		}
		if cred.ExpiresAt != nil && !s.now().Before(*cred.ExpiresAt) {
			return Identity{}, &Error{Code: EUNAUTHORIZED, Message: "Unauthorized", Err: errors.New("token expired")}
		}
		return Identity{Credential: cred, hash: hash}, nil
	}
	return Identity{}, &Error{Code: EUNAUTHORIZED, Message: "Unauthorized", Err: errors.New("unknown token")}
}

// hashers returns the peppers' hashers, current first. A service built without peppers (a
// function whose role may not read the pepper) cannot issue or check tokens.
func (s *Service) hashers(ctx context.Context) ([]*token.Hasher, error) {
	if s.peppers == nil {
		return nil, Internal(errors.New("this service holds no peppers"))
	}
	hs, err := s.peppers.Hashers(ctx)
	if err != nil {
		return nil, Unavailable(fmt.Errorf("read peppers: %w", err))
	}
	if len(hs) == 0 {
		return nil, Internal(errors.New("no peppers in force"))
	}
	return hs, nil
}

// RecordUsage notes that id was just used. It writes at most once per LastUsedInterval per
// token: not at all when the credential read at authentication is fresh enough, and not again
// from this process while its own last write is. The write is conditional, so concurrent
// processes still produce one change per interval, and bounded by timeout, because last use
// is bookkeeping that must not hold up the request it records.
func (s *Service) RecordUsage(ctx context.Context, id Identity, timeout time.Duration) error {
	now := s.instant()
	notBefore := now.Add(-s.limits.LastUsedInterval)
	if id.LastUsedAt != nil && id.LastUsedAt.After(notBefore) {
		return nil
	}
	s.touchMu.Lock()
	if last, ok := s.touched[id.hash]; ok && last.After(notBefore) {
		s.touchMu.Unlock()
		return nil
	}
	if len(s.touched) >= 10_000 { // bound the memory of a long-lived process
		clear(s.touched)
	}
	s.touched[id.hash] = now
	s.touchMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.store.TouchToken(ctx, id.hash, now, notBefore)
}

func (s *Service) getAccount(ctx context.Context, orgID, saID string) (ServiceAccount, error) {
	if err := checkOrg(orgID); err != nil {
		return ServiceAccount{}, err
	}
	if !ValidServiceAccountID(saID) {
		return ServiceAccount{}, NotFound("service account")
	}
	return s.store.GetServiceAccount(ctx, orgID, saID)
}

func (s *Service) newID(prefix string, now time.Time) (string, error) {
	s.idMu.Lock()
	id, err := ulid.New(ulid.Timestamp(now), s.idEntropy)
	s.idMu.Unlock()
	if err != nil {
		return "", Internal(fmt.Errorf("new id: %w", err))
	}
	return prefix + id.String(), nil
}

func checkOrg(orgID string) error {
	if !ValidOrgID(orgID) {
		return Invalid(FieldError{"orgId", "must be 1–64 letters, digits, '-' or '_'"})
	}
	return nil
}
