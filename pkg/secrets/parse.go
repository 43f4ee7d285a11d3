package secrets

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opentrace/service-accounts/pkg/token"
)

// secretJSON is the secret's shape; see the package comment. Unknown fields are ignored on
// purpose, because rotation tooling may add its own.
type secretJSON struct {
	CurrentVersion  string `json:"currentVersion"`
	Current         string `json:"current"`
	NextVersion     string `json:"nextVersion,omitempty"`
	Next            string `json:"next,omitempty"`
	PreviousVersion string `json:"previousVersion,omitempty"`
	Previous        string `json:"previous,omitempty"`
}

// Parse validates a secret string of the shape described in the package comment and returns its
// Keyring. Every error wraps ErrInvalidKeyring and none echoes the secret: encoding/json's own
// messages quote offending characters and numbers, so they are replaced here by ones that name
// only the field or the byte offset.
func Parse(secretString []byte) (Keyring, error) {
	var s secretJSON
	if err := json.Unmarshal(secretString, &s); err != nil {
		return Keyring{}, fmt.Errorf("%w: %s", ErrInvalidKeyring, describeJSONError(err))
	}
	optional := func(version, key string) *token.Pepper {
		if key == "" {
			return nil
		}
		return &token.Pepper{Version: version, Key: []byte(key)}
	}
	return newKeyring(Ring{
		Current: token.Pepper{Version: s.CurrentVersion, Key: []byte(s.Current)},
		Next:    optional(s.NextVersion, s.Next), Previous: optional(s.PreviousVersion, s.Previous),
	})
}

// describeJSONError turns a decoding error into a message that carries no input bytes. It never
// includes err's text, which is why the result is a string and not a wrapped error.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("secret is not valid JSON (syntax error near byte %d)", syntax.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return "secret is not a JSON object"
	case errors.As(err, &typ):
		// Field is built from this package's struct tags, never from the input.
		return fmt.Sprintf("secret field %s is not a string", typ.Field)
	default:
		return "secret is not valid JSON"
	}
}
