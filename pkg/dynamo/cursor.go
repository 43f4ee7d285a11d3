package dynamo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// cursorSigner makes pagination cursors opaque to clients and tamper-evident: a cursor is the
// position plus a MAC over the org it was issued to, so it cannot be altered, forged, or
// replayed against another org's listing.
type cursorSigner struct{ key []byte }

const cursorVersion = "c1"

var errBadCursor = errors.New("bad cursor")

func (c cursorSigner) mac(org, position string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(cursorVersion + "\x00" + org + "\x00" + position))
	return m.Sum(nil)[:16]
}

func (c cursorSigner) seal(org, position string) string {
	enc := base64.RawURLEncoding
	return cursorVersion + "." + enc.EncodeToString([]byte(position)) + "." + enc.EncodeToString(c.mac(org, position))
}

// open returns the position of a cursor sealed for org. Only the exact string seal made opens:
// the decoded position is sealed again and the whole cursor compared in constant time, so no
// other spelling (base64's ignored bits, skipped line breaks) is ever accepted.
func (c cursorSigner) open(org, cursor string) (string, error) {
	if len(cursor) > 256 {
		return "", errBadCursor
	}
	version, rest, ok := strings.Cut(cursor, ".")
	if !ok || version != cursorVersion {
		return "", errBadCursor
	}
	pos64, _, ok := strings.Cut(rest, ".")
	if !ok {
		return "", errBadCursor
	}
	pos, err := base64.RawURLEncoding.DecodeString(pos64)
	if err != nil || !hmac.Equal([]byte(cursor), []byte(c.seal(org, string(pos)))) {
		return "", errBadCursor
	}
	return string(pos), nil
}
