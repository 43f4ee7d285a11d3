// Package token owns the wire format of service-account API tokens: how they
// are generated, how a presented token is checked before anything is looked
// up, how it is hashed into a storage key and how it is shown to people.
//
// It does no I/O of its own so that the authorizer can reject typos and
// garbage cheaply, and so that every caller agrees on one format.
package token

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf8"
)

// Prefix starts every token. It is fixed so that secret scanners can find
// leaked tokens and people can tell them from other credentials at a glance.
const Prefix = "otsa_"

// Length is the length in bytes of every token: the prefix, 32 random base62
// characters and a 6-character base62 checksum.
const Length = 43

const (
	randomLen     = 32
	checksumLen   = 6
	checksumStart = len(Prefix) + randomLen // 37: the checksum covers s[:checksumStart]

	// alphabet is base62 in ASCII order, so a token sorts like its digits.
	alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

	// rejectFrom is the largest multiple of 62 that fits in a byte (4*62). Bytes
	// at or above it are discarded: keeping them would make the first eight
	// characters of the alphabet 25% more likely than the rest.
	rejectFrom = 248

	// chunkLen is what Generate asks the reader for at a time. With 1 byte in
	// 32 rejected, 48 bytes yield fewer than 32 usable ones with a probability
	// around 1e-13, so one Read is the norm and the loop is only a safety net.
	chunkLen = randomLen + randomLen/2
)

// hintEllipsis stands for the hidden part of a token in a hint.
const hintEllipsis = "…"

// ErrMalformed reports a string that is not shaped like a token: wrong prefix,
// wrong length, or a character outside base62. Its text never includes the
// input, so it is safe to log.
var ErrMalformed = errors.New("token: malformed")

// ErrChecksum reports a string that is shaped like a token but whose checksum
// does not match its body, which is what a typo or a truncated paste looks
// like. Its text never includes the input, so it is safe to log.
var ErrChecksum = errors.New("token: checksum mismatch")

// crcTable is the IEEE table; Parse runs the table loop itself rather than
// calling crc32.ChecksumIEEE because that call makes its argument escape, and
// Parse must not allocate on the authorizer's hot path.
var crcTable = crc32.MakeTable(crc32.IEEE)

// Generate returns a new token whose randomness is read from r, which is
// crypto/rand.Reader in production and a fixed reader in tests. Characters are
// drawn uniformly from base62 by rejection sampling, so no character is more
// likely than another. It returns an error only when r fails.
func Generate(r io.Reader) (string, error) {
	var tok [Length]byte
	copy(tok[:], Prefix)

	var chunk [chunkLen]byte
	n := len(Prefix)
	for n < checksumStart {
		if _, err := io.ReadFull(r, chunk[:]); err != nil {
			return "", fmt.Errorf("token: read randomness: %w", err)
		}
		for _, b := range chunk {
			if b >= rejectFrom {
				continue
			}
			tok[n] = alphabet[b%62]
			n++
			if n == checksumStart {
				break
			}
		}
	}

	putChecksum((*[checksumLen]byte)(tok[checksumStart:]), checksum(tok[:checksumStart]))
	return string(tok[:]), nil
}

// Parse reports whether s is a well-formed token with a valid checksum,
// without any I/O, so garbage is turned away before a database is asked. It
// returns nil, ErrMalformed or ErrChecksum, and never allocates. The errors
// carry no part of s, so they can be logged.
func Parse(s string) error {
	if len(s) != Length || s[:len(Prefix)] != Prefix {
		return ErrMalformed
	}
	for i := len(Prefix); i < Length; i++ {
		if !isBase62(s[i]) {
			return ErrMalformed
		}
	}
	// Comparing the canonical encoding, rather than decoding the six digits,
	// keeps values above MaxUint32 (62^6 > 2^32) from ever matching.
	var want [checksumLen]byte
	putChecksum(&want, checksum(s[:checksumStart]))
	if s[checksumStart:] != string(want[:]) {
		return ErrChecksum
	}
	return nil
}

// Hint returns the form of a token that is stored and shown to people: the
// prefix, an ellipsis and the last four characters, enough to tell tokens
// apart without revealing them. Inputs shorter than four characters give
// Prefix followed by the ellipsis alone.
func Hint(s string) string {
	// Counting runes, not bytes, keeps a hint of odd input valid UTF-8.
	end := len(s)
	for range 4 {
		if end == 0 {
			return Prefix + hintEllipsis
		}
		_, size := utf8.DecodeLastRuneInString(s[:end])
		end -= size
	}
	return Prefix + hintEllipsis + s[end:]
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

func checksum[T string | []byte](b T) uint32 {
	crc := ^uint32(0)
	for i := range len(b) {
		crc = crcTable[byte(crc)^b[i]] ^ crc>>8
	}
	return ^crc
}

// putChecksum writes crc as a big-endian base62 number; filling all six digits
// from the right is what left-pads it with '0'.
func putChecksum(dst *[checksumLen]byte, crc uint32) {
	for i := checksumLen - 1; i >= 0; i-- {
		dst[i] = alphabet[crc%62]
		crc /= 62
	}
}
