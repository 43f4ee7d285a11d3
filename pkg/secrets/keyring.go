package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/opentrace/service-accounts/pkg/token"
)

// minKeyLen mirrors token.NewHasher's minimum so that a short key in the secret is reported by
// its JSON field name rather than as a bare hasher error.
const minKeyLen = 32

// ErrInvalidKeyring is wrapped by every error that reports a secret or a set of peppers that
// cannot make a Keyring: bad JSON, a missing field, a short key or clashing versions. Callers
// tell a misconfigured secret from an unreachable Secrets Manager with errors.Is.
var ErrInvalidKeyring = errors.New("invalid pepper keyring")

// Source supplies the keyring in force. Implementations are safe for concurrent use.
type Source interface {
	// Keyring returns the peppers in force, or an error when none can be trusted; a caller must
	// then refuse to issue or check tokens rather than fall back to anything.
	Keyring(ctx context.Context) (Keyring, error)
}

// Ring is the peppers a secret holds: always a current one, and during a rotation a next one
// (first phase) or a previous one (second phase).
type Ring struct {
	Current        token.Pepper
	Next, Previous *token.Pepper
}

// Keyring is the set of peppers in force as hashers. Printing a Keyring with fmt or log/slog
// shows the versions only.
type Keyring struct {
	// Current hashes every new token and is tried first when checking one.
	Current *token.Hasher
	// Next is the pepper a rotation is bringing in: accepted when checking a token, never used
	// to issue one, so that once every instance holds it, the pepper can become current
	// without any instance refusing a token hashed with it. Nil outside the first phase.
	Next *token.Hasher
	// Previous is the pepper a rotation took out of current, still accepted until the tokens
	// hashed with it are gone. Nil outside the second phase.
	Previous *token.Hasher
}

// newKeyring validates the peppers and builds their hashers. Its messages name the fields of the
// secret's JSON, which map one to one onto the peppers' versions and keys.
func newKeyring(r Ring) (Keyring, error) {
	if r.Current.Version == "" {
		return Keyring{}, fmt.Errorf("%w: currentVersion is missing", ErrInvalidKeyring)
	}
	if len(r.Current.Key) == 0 {
		return Keyring{}, fmt.Errorf("%w: current is missing", ErrInvalidKeyring)
	}
	var kr Keyring
	var err error
	if kr.Current, err = hasher("current", &r.Current); err != nil {
		return Keyring{}, err
	}
	// Stored hashes name their pepper by version, so two keys under one version would make
	// the tokens hashed with either ambiguous.
	seen := map[string]string{r.Current.Version: "currentVersion"}
	for _, p := range []struct {
		field string
		in    *token.Pepper
		out   **token.Hasher
	}{{"next", r.Next, &kr.Next}, {"previous", r.Previous, &kr.Previous}} {
		if p.in == nil {
			continue
		}
		if p.in.Version == "" {
			return Keyring{}, fmt.Errorf("%w: %s is set but %sVersion is missing", ErrInvalidKeyring, p.field, p.field)
		}
		if other, ok := seen[p.in.Version]; ok {
			return Keyring{}, fmt.Errorf("%w: %sVersion equals %s %q", ErrInvalidKeyring, p.field, other, p.in.Version)
		}
		seen[p.in.Version] = p.field + "Version"
		if *p.out, err = hasher(p.field, p.in); err != nil {
			return Keyring{}, err
		}
	}
	return kr, nil
}

func hasher(field string, p *token.Pepper) (*token.Hasher, error) {
	if len(p.Key) < minKeyLen {
		return nil, fmt.Errorf("%w: %s is %d bytes, want at least %d", ErrInvalidKeyring, field, len(p.Key), minKeyLen)
	}
	h, err := token.NewHasher(*p)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidKeyring, field, err)
	}
	return h, nil
}

// Hashers returns the hashers in the order a token is checked: Current, then Next, then
// Previous, each if present. It returns nil for the zero Keyring.
func (k Keyring) Hashers() []*token.Hasher {
	var hs []*token.Hasher
	for _, h := range []*token.Hasher{k.Current, k.Next, k.Previous} {
		if h != nil {
			hs = append(hs, h)
		}
	}
	return hs
}

// String returns the pepper versions, never key material.
func (k Keyring) String() string {
	return "secrets.Keyring{Current: " + hasherVersion(k.Current) + ", Next: " + hasherVersion(k.Next) +
		", Previous: " + hasherVersion(k.Previous) + "}"
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
		slog.String("next", hasherVersion(k.Next)),
		slog.String("previous", hasherVersion(k.Previous)),
	)
}

func hasherVersion(h *token.Hasher) string {
	if h == nil {
		return "<none>"
	}
	return h.Version()
}
