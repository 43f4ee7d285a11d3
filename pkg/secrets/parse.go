package secrets

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/opentrace/service-accounts/pkg/token"
)

// secretJSON is the secret's shape; see the package comment. Unknown fields are ignored on
// purpose, because rotation tooling may add its own.
type secretJSON struct {
	CurrentVersion  string `json:"currentVersion"`
	Current         string `json:"current"`
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
	current := token.Pepper{Version: s.CurrentVersion, Key: []byte(s.Current)}
	var previous *token.Pepper
	if s.Previous != "" {
		previous = &token.Pepper{Version: s.PreviousVersion, Key: []byte(s.Previous)}
	}
	return newKeyring(current, previous)
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

// generatedKeyLen is long enough that the 62-symbol alphabet gives about 381 bits, more than the
// 256 bits an HMAC-SHA256 key can use.
const generatedKeyLen = 64

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Generate returns a fresh secret string of the shape Parse reads: version "1" and a current key
// of 64 random alphanumeric characters read from r, which is normally crypto/rand.Reader. It is
// for the local stack, which has no CloudFormation to generate one. It returns an error when r
// fails or yields too few usable bytes.
func Generate(r io.Reader) ([]byte, error) {
	key := make([]byte, 0, generatedKeyLen)
	buf := make([]byte, generatedKeyLen)
	// Rejection sampling discards about 3% of bytes, so a handful of rounds always suffices for
	// a real random source; the bound turns a stuck reader into an error instead of a hang.
	for round := 0; len(key) < generatedKeyLen; round++ {
		if round == 16 {
			return nil, errors.New("generate pepper secret: random source yields too few usable bytes")
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("generate pepper secret: %w", err)
		}
		for _, b := range buf {
			// 248 is the largest multiple of 62 below 256; taking b%62 only below it keeps
			// every character equally likely.
			if b >= 248 || len(key) == generatedKeyLen {
				continue
			}
			key = append(key, alphabet[int(b)%len(alphabet)])
		}
		clear(buf)
	}
	return json.Marshal(secretJSON{CurrentVersion: "1", Current: string(key)})
}
