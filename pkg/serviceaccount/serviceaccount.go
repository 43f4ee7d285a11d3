// Package serviceaccount is the domain of the system: service accounts, their API tokens and the
// audit findings about them, the use cases that act on them, and the small interfaces (Store,
// Peppers, Clock) those use cases need from the outside world. It knows nothing of HTTP,
// DynamoDB or Lambda; adapters in sibling packages implement its interfaces.
package serviceaccount

import (
	"time"
)

// ServiceAccount is a non-human identity owned by one organisation.
type ServiceAccount struct {
	ID           string
	OrgID        string
	Name         string
	Description  string
	CreatedAt    time.Time
	CreatedBy    string
	ActiveTokens int
	LastUsedAt   *time.Time
}

// Token status values, derived from a token's times rather than stored, so that expiry needs no
// background job to become true.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
	StatusExpired = "expired"
)

// Token is the metadata of one API token. The secret itself is never held here; Hash is the
// keyed hash the store looks tokens up by, kept so that revocation can find the lookup item, and
// it must never be shown to a caller.
type Token struct {
	ID               string
	OrgID            string
	ServiceAccountID string
	Name             string
	Hint             string
	CreatedAt        time.Time
	CreatedBy        string
	ExpiresAt        *time.Time
	LastUsedAt       *time.Time
	RevokedAt        *time.Time
	// ClosedAt is when the token stopped holding one of its account's slots: its revocation,
	// or the retirement of an expired token.
	ClosedAt      *time.Time
	Hash          string
	PepperVersion string
}

// Status reports whether the token is active, revoked or expired at now.
func (t Token) Status(now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return StatusRevoked
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return StatusExpired
	default:
		return StatusActive
	}
}

// Credential is what the store holds under a token's hash: enough to turn a presented token
// into an identity with one read.
type Credential struct {
	OrgID              string
	ServiceAccountID   string
	ServiceAccountName string
	TokenID            string
	TokenName          string
	ExpiresAt          *time.Time
	LastUsedAt         *time.Time
}

// Identity is the authenticated principal behind a service-account token.
type Identity struct {
	Credential
	// hash locates the credential again for RecordUsage without keeping the token itself.
	hash string
}

// ServiceAccountPage is one page of a listing; NextCursor is empty on the last page.
type ServiceAccountPage struct {
	Items      []ServiceAccount
	NextCursor string
}

// Warning is naming advice returned on create: the request succeeded, but the name goes against
// the product's naming conventions.
type Warning struct {
	Code    string
	Message string
}

// Finding kinds reported by the audit.
const (
	FindingNeverUsed     = "never_used"
	FindingStale         = "stale"
	FindingRotationDue   = "rotation_due"
	FindingExpiring      = "expiring"
	FindingUnusedAccount = "unused_account"
)

// Finding is one audit observation about a token, or about a whole account when TokenID is empty.
type Finding struct {
	ServiceAccountID string
	TokenID          string
	Kind             string
	Since            time.Time
	Detail           string
}

// CredentialUse is a token's use, as the authorizer recorded it: the last use a service
// account and its token show moves forward to At.
type CredentialUse struct {
	OrgID            string
	ServiceAccountID string
	TokenID          string
	At               time.Time
}
