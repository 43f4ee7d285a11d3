package secrets

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"

	"github.com/opentrace/service-accounts/pkg/token"
)

// minKeyLen mirrors token.NewHasher's minimum so that a short key in the secret is reported by
// its JSON field name rather than as a bare hasher error.
const minKeyLen = 32

// cursorKeyLabel separates the cursor-signing key from the pepper. The version suffix lets a
// future derivation change without colliding with cursors signed under this one.
const cursorKeyLabel = "opentrace/cursor/v1"

// ErrInvalidKeyring is wrapped by every error that reports a secret or a pair of peppers that
// cannot make a Keyring: bad JSON, a missing field, a short key or clashing versions. Callers
// tell a misconfigured secret from an unreachable Secrets Manager with errors.Is.
var ErrInvalidKeyring = errors.New("invalid pepper keyring")

// Source supplies the keyring in force. Implementations are safe for concurrent use.
type Source interface {
	// Keyring returns the peppers in force, or an error when none can be trusted; a caller must
	// then refuse to issue or check tokens rather than fall back to anything.
	Keyring(ctx context.Context) (Keyring, error)
}

// Keyring is the set of peppers in force: Current first, then Previous during rotation. Printing
// a Keyring with fmt or log/slog shows the versions only.
type Keyring struct {
	// Current hashes every new token and is tried first when checking one.
	Current *token.Hasher
	// Previous is the pepper being rotated out, or nil outside a rotation.
	Previous *token.Hasher

	// cursorKey returns a copy of the cursor key, derived once when the keyring is built so that
	// the raw pepper need not be kept. It is a closure because fmt prints a func as an address
	// under every verb, even as an unexported field it cannot call methods on; a byte array,
	// even behind a pointer, is printed in full by a mismatched verb such as %s on a struct
	// holding a Keyring.
	cursorKey func() []byte
}

// newKeyring validates the peppers and builds the hashers and the cursor key. Its messages name
// the fields of the secret's JSON, which map one to one onto the peppers' versions and keys.
func newKeyring(current token.Pepper, previous *token.Pepper) (Keyring, error) {
	if current.Version == "" {
		return Keyring{}, fmt.Errorf("%w: currentVersion is missing", ErrInvalidKeyring)
	}
	if len(current.Key) == 0 {
		return Keyring{}, fmt.Errorf("%w: current is missing", ErrInvalidKeyring)
	}
	if len(current.Key) < minKeyLen {
		return Keyring{}, fmt.Errorf("%w: current is %d bytes, want at least %d", ErrInvalidKeyring, len(current.Key), minKeyLen)
	}
	cur, err := token.NewHasher(current)
	if err != nil {
		return Keyring{}, fmt.Errorf("%w: current: %w", ErrInvalidKeyring, err)
	}
	kr := Keyring{Current: cur, cursorKey: deriveCursorKey(current.Key)}
	if previous == nil {
		return kr, nil
	}

	switch {
	case previous.Version == "":
		return Keyring{}, fmt.Errorf("%w: previous is set but previousVersion is missing", ErrInvalidKeyring)
	case previous.Version == current.Version:
		// Stored hashes name their pepper by version, so two keys under one version would make
		// the older tokens' hashes ambiguous.
		return Keyring{}, fmt.Errorf("%w: previousVersion equals currentVersion %q", ErrInvalidKeyring, current.Version)
	case len(previous.Key) < minKeyLen:
		return Keyring{}, fmt.Errorf("%w: previous is %d bytes, want at least %d", ErrInvalidKeyring, len(previous.Key), minKeyLen)
	}
	prev, err := token.NewHasher(*previous)
	if err != nil {
		return Keyring{}, fmt.Errorf("%w: previous: %w", ErrInvalidKeyring, err)
	}
	kr.Previous = prev
	return kr, nil
}

func deriveCursorKey(pepper []byte) func() []byte {
	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte(cursorKeyLabel))
	var key [sha256.Size]byte
	mac.Sum(key[:0])
	return func() []byte {
		c := key
		return c[:]
	}
}

// Hashers returns Current then Previous, if any, in the order a token should be checked. It
// returns nil for the zero Keyring.
func (k Keyring) Hashers() []*token.Hasher {
	hs := make([]*token.Hasher, 0, 2)
	for _, h := range []*token.Hasher{k.Current, k.Previous} {
		if h != nil {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		return nil
	}
	return hs
}

// CursorKey returns the 32-byte key that signs pagination cursors: HMAC-SHA256 of the string
// "opentrace/cursor/v1" under the current pepper's key. Deriving it lets one secret serve both
// purposes without the pepper itself signing anything a client can see. The key follows the
// current pepper, so a rotation invalidates outstanding cursors, which is acceptable for
// short-lived pagination state. Each call returns a fresh copy the caller may keep or clear. It
// returns nil for a Keyring that was not built by this package.
func (k Keyring) CursorKey() []byte {
	if k.cursorKey == nil {
		return nil
	}
	return k.cursorKey()
}

// String returns the pepper versions, never key material.
func (k Keyring) String() string {
	return "secrets.Keyring{Current: " + hasherVersion(k.Current) + ", Previous: " + hasherVersion(k.Previous) + "}"
}

// Format implements fmt.Formatter so that every verb, including %x and %#v, prints String and
// none falls through to fmt's field-by-field printing.
func (k Keyring) Format(f fmt.State, _ rune) {
	fmt.Fprint(f, k.String())
}

// LogValue implements slog.LogValuer so that log lines record the pepper versions only.
func (k Keyring) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("current", hasherVersion(k.Current)),
		slog.String("previous", hasherVersion(k.Previous)),
	)
}

func hasherVersion(h *token.Hasher) string {
	if h == nil {
		return "<none>"
	}
	return h.Version()
}
