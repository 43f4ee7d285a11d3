package token_test

import (
	"crypto/rand"
	"testing"

	"github.com/opentrace/service-accounts/pkg/token"
)

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := token.Generate(rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	tok := seededTokens(b, 1, 1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if err := token.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	tok := seededTokens(b, 1, 1)[0]
	h := mustHasher(b, token.Pepper{Version: "v1", Key: testKey(32)})
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Hash(tok)
	}
}

// BenchmarkParseAndHash is the authorizer's per-request cost before the
// lookup: shape and checksum checks, then the storage key.
func BenchmarkParseAndHash(b *testing.B) {
	tok := seededTokens(b, 1, 1)[0]
	h := mustHasher(b, token.Pepper{Version: "v1", Key: testKey(32)})
	b.ReportAllocs()
	for b.Loop() {
		if err := token.Parse(tok); err != nil {
			b.Fatal(err)
		}
		_ = h.Hash(tok)
	}
}
