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
	enc := base64.RawURLEncoding.Strict() // one encoding per cursor: no equivalent variants
	return cursorVersion + "." + enc.EncodeToString([]byte(position)) + "." + enc.EncodeToString(c.mac(org, position))
}

func (c cursorSigner) open(org, cursor string) (string, error) {
	if len(cursor) > 256 {
		return "", errBadCursor
	}
	version, rest, ok := strings.Cut(cursor, ".")
	if !ok || version != cursorVersion {
		return "", errBadCursor
	}
	pos64, mac64, ok := strings.Cut(rest, ".")
	if !ok {
		return "", errBadCursor
	}
	enc := base64.RawURLEncoding.Strict() // one encoding per cursor: no equivalent variants
	pos, err1 := enc.DecodeString(pos64)
	mac, err2 := enc.DecodeString(mac64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, c.mac(org, string(pos))) {
		return "", errBadCursor
	}
	return string(pos), nil
}
