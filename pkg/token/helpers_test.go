package token_test

import (
	"hash/crc32"
	"io"
	"math/big"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/token"
)

// tokenRE is the contract's pattern, written out again rather than derived
// from the package so a change to the package cannot move both sides.
var tokenRE = regexp.MustCompile(`^otsa_[0-9A-Za-z]{38}$`)

// testAlphabet is base62 built from character ranges, independently of the
// package's literal.
var testAlphabet = func() string {
	var b strings.Builder
	for _, r := range [][2]byte{{'0', '9'}, {'A', 'Z'}, {'a', 'z'}} {
		for c := r[0]; c <= r[1]; c++ {
			b.WriteByte(c)
		}
	}
	return b.String()
}()

// cycleReader repeats its bytes forever, so a test controls exactly which
// bytes Generate sees however many it asks for.
type cycleReader struct {
	b []byte
	i int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	for n := range p {
		p[n] = r.b[r.i%len(r.b)]
		r.i++
	}
	return len(p), nil
}

// countingReader counts Read calls, to check Generate's chunking.
type countingReader struct {
	r     io.Reader
	calls int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.calls++
	return c.r.Read(p)
}

// base62CRC encodes crc the way the contract says, but through math/big,
// whose base-62 digits are 0-9a-zA-Z; swapping the letters' case maps them
// onto the contract's 0-9A-Za-z.
func base62CRC(t testing.TB, crc uint32) string {
	t.Helper()
	digits := new(big.Int).SetUint64(uint64(crc)).Text(62)
	swapped := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, digits)
	if len(swapped) > 6 {
		t.Fatalf("base62 of %d has %d digits, want at most 6", crc, len(swapped))
	}
	return strings.Repeat("0", 6-len(swapped)) + swapped
}

// withChecksum appends the contract's checksum to a prefix and random body.
func withChecksum(t testing.TB, body string) string {
	t.Helper()
	return body + base62CRC(t, crc32.ChecksumIEEE([]byte(body)))
}

// expectedToken computes, without the package, the token that a reader
// yielding stream should produce: the first 32 bytes below 248, each mod 62.
func expectedToken(t testing.TB, stream []byte) string {
	t.Helper()
	var body strings.Builder
	body.WriteString("otsa_")
	for i := 0; body.Len() < 37; i++ {
		b := stream[i%len(stream)]
		if b < 248 {
			body.WriteByte(testAlphabet[int(b)%62])
		}
	}
	return withChecksum(t, body.String())
}

// seededTokens returns n deterministic, valid tokens.
func seededTokens(t testing.TB, n int, seed byte) []string {
	t.Helper()
	r := rand.NewChaCha8([32]byte{seed})
	toks := make([]string, n)
	for i := range toks {
		tok, err := token.Generate(r)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		toks[i] = tok
	}
	return toks
}

func mustHasher(t testing.TB, p token.Pepper) *token.Hasher {
	t.Helper()
	h, err := token.NewHasher(p)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	return h
}

// testKey returns n deterministic key bytes.
func testKey(n int) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = byte(i*7 + 3)
	}
	return k
}
