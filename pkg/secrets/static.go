package secrets

import (
	"context"
	"fmt"
	"log/slog"
)

// Static is a Source with fixed peppers, for the local stack and tests, where there is no
// Secrets Manager and nothing rotates while the process runs. It is safe for concurrent use.
type Static struct {
	keyring Keyring
}

// NewStatic returns a Static serving the peppers of r. It applies the same rules as Parse and
// returns an error wrapping ErrInvalidKeyring when a version is empty, a key is shorter than 32
// bytes, or two versions are equal.
func NewStatic(r Ring) (*Static, error) {
	kr, err := newKeyring(r)
	if err != nil {
		return nil, err
	}
	return &Static{keyring: kr}, nil
}

// StaticKeyring returns a Static serving kr, a keyring already read with Parse (the local
// stack's generated secret).
func StaticKeyring(kr Keyring) *Static { return &Static{keyring: kr} }

// Keyring returns the keyring the Static was built with; it never fails.
func (s *Static) Keyring(context.Context) (Keyring, error) {
	return s.keyring, nil
}

// String returns the pepper versions, never key material.
func (s *Static) String() string {
	return "secrets.Static{Current: " + hasherVersion(s.keyring.Current) + ", Next: " + hasherVersion(s.keyring.Next) +
		", Previous: " + hasherVersion(s.keyring.Previous) + "}"
}

// Format implements fmt.Formatter so that every verb prints String rather than the fields.
func (s *Static) Format(f fmt.State, _ rune) {
	fmt.Fprint(f, s.String())
}

// LogValue implements slog.LogValuer so that log lines record the pepper versions only.
func (s *Static) LogValue() slog.Value {
	return s.keyring.LogValue()
}
