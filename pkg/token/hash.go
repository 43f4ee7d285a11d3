package token

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
)

const (
	// minKeyLen is the shortest pepper key NewHasher accepts: a shorter key
	// would be weaker than the 256-bit digest HMAC-SHA256 produces.
	minKeyLen = 32

	blockSize = sha256.BlockSize // 64
	redacted  = "[REDACTED]"

	// maxInline is the longest input Hash handles in its stack buffer. Tokens
	// are 43 bytes; longer input is not a token but must still hash correctly,
	// so it takes a slower, allocating path.
	maxInline = 192
)

// Pepper is a versioned HMAC key for token hashes. The version is stored next
// to each hash so that a rotation can tell which key made it. Every way of
// printing a Pepper (fmt verbs, log/slog, encoding/json, a panic) shows only
// the version and "[REDACTED]", because peppers pass through configuration
// code that is apt to log what it holds.
type Pepper struct {
	// Version names the key, for example "v2"; it is not secret.
	Version string
	// Key is the secret HMAC key; NewHasher needs at least 32 bytes.
	Key []byte
}

// String returns the version and a redaction marker, never the key.
func (p Pepper) String() string {
	return "token.Pepper(" + p.Version + ", " + redacted + ")"
}

// GoString returns a Go-like rendering for %#v with the key redacted.
func (p Pepper) GoString() string {
	return "token.Pepper{Version:" + strconv.Quote(p.Version) + ", Key:" + redacted + "}"
}

// Format implements fmt.Formatter so that every verb and flag, including %x
// and %+v which would otherwise print the key's bytes, goes through String or
// GoString.
func (p Pepper) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, p)
}

// LogValue implements slog.LogValuer so that log/slog handlers record the
// version and never the key.
func (p Pepper) LogValue() slog.Value {
	return slog.GroupValue(slog.String("version", p.Version), slog.String("key", redacted))
}

// MarshalJSON redacts the key, because slog's JSON handler and
// encoding/json would otherwise print it, as base64, for any struct that
// embeds a Pepper. Decoding a Pepper from JSON is unaffected.
func (p Pepper) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Version string `json:"version"`
		Key     string `json:"key"`
	}{p.Version, redacted})
}

// Hasher computes the storage key of a token: HMAC-SHA256 under a pepper, as
// lowercase hex. It is safe for concurrent use. The padded key blocks are
// derived once in NewHasher, so each Hash costs two SHA-256 compressions of
// stack buffers and a single allocation for the result, which matters because
// the authorizer hashes on every request and, during a rotation, twice.
//
// The zero Hasher has no key and panics on Hash; use NewHasher.
type Hasher struct {
	version string
	// hash is a method value bound to the padded key blocks. fmt and reflect
	// cannot see inside a func, so even a Hasher printed as a plain struct,
	// for example as an unexported field of something logged with %s, shows
	// an address and no key material.
	hash func(tok string) string
}

// pads holds the key XORed with the RFC 2104 ipad and opad constants. Either
// one gives the key back, so it is as secret as the key.
type pads struct {
	inner [blockSize]byte
	outer [blockSize]byte
}

// NewHasher returns a Hasher for p. It returns an error, which never includes
// the key, when the version is empty or the key is shorter than 32 bytes.
// Keys longer than the SHA-256 block are hashed first, as RFC 2104 and
// crypto/hmac do, so Hash always agrees with crypto/hmac.
func NewHasher(p Pepper) (*Hasher, error) {
	if p.Version == "" {
		return nil, errors.New("token: pepper version is empty")
	}
	if len(p.Key) < minKeyLen {
		return nil, fmt.Errorf("token: pepper %q key is %d bytes, want at least %d", p.Version, len(p.Key), minKeyLen)
	}
	var key [blockSize]byte
	if len(p.Key) > blockSize {
		sum := sha256.Sum256(p.Key)
		copy(key[:], sum[:])
	} else {
		copy(key[:], p.Key)
	}
	pd := new(pads)
	for i, k := range key {
		pd.inner[i] = k ^ 0x36
		pd.outer[i] = k ^ 0x5c
	}
	clear(key[:])
	return &Hasher{version: p.Version, hash: pd.hash}, nil
}

// Version returns the version of the pepper h was built from, to be stored
// beside each hash.
func (h *Hasher) Version() string {
	return h.version
}

// Hash returns HMAC-SHA256(pepper, tok) as 64 lowercase hex characters. It
// does not check that tok is a token; call Parse first.
func (h *Hasher) Hash(tok string) string {
	return h.hash(tok)
}

func (p *pads) hash(tok string) string {
	if len(tok) > maxInline {
		return p.hashSlow(tok)
	}
	var in [blockSize + maxInline]byte
	copy(in[:], p.inner[:])
	n := blockSize + copy(in[blockSize:], tok)
	innerSum := sha256.Sum256(in[:n])

	var out [blockSize + sha256.Size]byte
	copy(out[:], p.outer[:])
	copy(out[blockSize:], innerSum[:])
	sum := sha256.Sum256(out[:])

	var dst [2 * sha256.Size]byte
	hex.Encode(dst[:], sum[:])
	return string(dst[:])
}

// hashSlow handles input too long for hash's stack buffer. Giving crypto/hmac
// the padded blocks as a key would be wrong (it would pad them again), so it
// streams them through sha256 the way HMAC is defined.
func (p *pads) hashSlow(tok string) string {
	inner := sha256.New()
	inner.Write(p.inner[:])
	inner.Write([]byte(tok))
	outer := sha256.New()
	outer.Write(p.outer[:])
	outer.Write(inner.Sum(nil))
	return hex.EncodeToString(outer.Sum(nil))
}

// String returns the pepper version and a redaction marker, never the key.
func (h *Hasher) String() string {
	return "token.Hasher(" + h.versionOrNil() + ", " + redacted + ")"
}

// GoString returns a Go-like rendering for %#v with the key redacted.
func (h *Hasher) GoString() string {
	return "&token.Hasher{version:" + strconv.Quote(h.versionOrNil()) + ", key:" + redacted + "}"
}

// Format implements fmt.Formatter so that every verb and flag goes through
// String or GoString and none can reach the key material.
func (h *Hasher) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, h)
}

// LogValue implements slog.LogValuer so that log/slog handlers record the
// pepper version and never the key.
func (h *Hasher) LogValue() slog.Value {
	return slog.GroupValue(slog.String("version", h.versionOrNil()), slog.String("key", redacted))
}

// versionOrNil lets a nil *Hasher print instead of panicking inside fmt.
func (h *Hasher) versionOrNil() string {
	if h == nil {
		return "<nil>"
	}
	return h.version
}

// formatRedacted prints v's GoString for %#v and its String for every other
// verb, so no verb falls through to fmt's field-by-field printing.
func formatRedacted(f fmt.State, verb rune, v interface {
	fmt.Stringer
	fmt.GoStringer
}) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, v.GoString())
		return
	}
	fmt.Fprint(f, v.String())
}
