package token_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/opentrace/service-accounts/pkg/token"
)

func TestConstants(t *testing.T) {
	if token.Prefix != "otsa_" {
		t.Errorf("Prefix = %q, want %q", token.Prefix, "otsa_")
	}
	if token.Length != 43 {
		t.Errorf("Length = %d, want 43", token.Length)
	}
}

func TestGenerateKnownAnswer(t *testing.T) {
	ascending := make([]byte, 256)
	for i := range ascending {
		ascending[i] = byte(i)
	}
	descending := make([]byte, 256)
	for i := range descending {
		descending[i] = byte(255 - i)
	}
	digest := sha256.Sum256([]byte("opentrace service accounts"))

	tests := []struct {
		name   string
		stream []byte
		reader func(stream []byte) io.Reader
		// body, when set, pins the random part to a hand-written literal.
		body string
	}{
		{
			name:   "AllZero",
			stream: []byte{0},
			body:   "00000000000000000000000000000000",
		},
		{
			name:   "Ascending",
			stream: ascending,
			body:   "0123456789ABCDEFGHIJKLMNOPQRSTUV",
		},
		{
			name:   "AscendingOneByteReads",
			stream: ascending,
			reader: func(s []byte) io.Reader { return iotest.OneByteReader(&cycleReader{b: s}) },
			body:   "0123456789ABCDEFGHIJKLMNOPQRSTUV",
		},
		{
			// 255..248 are rejected, then 247 % 62 = 61 ('z'), 246 ('y'), ...
			name:   "DescendingSkipsTop",
			stream: descending,
			body:   "zyxwvutsrqponmlkjihgfedcbaZYXWVU",
		},
		{
			name:   "Wraparound",
			stream: []byte{61, 62, 123, 124, 185, 186, 247},
			body:   "z0z0z0zz0z0z0zz0z0z0zz0z0z0zz0z0",
		},
		{
			name:   "SHA256Stream",
			stream: digest[:],
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = &cycleReader{b: tc.stream}
			if tc.reader != nil {
				r = tc.reader(tc.stream)
			}
			got, err := token.Generate(r)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			want := expectedToken(t, tc.stream)
			if tc.body != "" && want != withChecksum(t, "otsa_"+tc.body) {
				t.Fatalf("test helper disagrees with the literal body %q: %q", tc.body, want)
			}
			if got != want {
				t.Errorf("Generate = %q, want %q", got, want)
			}
			if err := token.Parse(got); err != nil {
				t.Errorf("Parse(Generate()) = %v", err)
			}
		})
	}
}

func TestGenerateByteMapping(t *testing.T) {
	// Each case puts one byte first, followed by filler 1s ('1'): the first
	// random character shows what that byte became, or '1' if it was skipped.
	tests := []struct {
		name string
		b    byte
		want byte
	}{
		{"Zero", 0, '0'},
		{"Nine", 9, '9'},
		{"Ten", 10, 'A'},
		{"ThirtyFive", 35, 'Z'},
		{"ThirtySix", 36, 'a'},
		{"SixtyOne", 61, 'z'},
		{"SixtyTwoWraps", 62, '0'},
		{"LastAccepted247", 247, 'z'},
		{"Rejected248", 248, '1'},
		{"Rejected255", 255, '1'},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream := append([]byte{tc.b}, bytes.Repeat([]byte{1}, 100)...)
			got, err := token.Generate(bytes.NewReader(stream))
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if got[5] != tc.want {
				t.Errorf("first random char = %q, want %q (token %q)", got[5], tc.want, got)
			}
		})
	}
}

func TestGenerateSkipsRejectedBytes(t *testing.T) {
	base := []byte("fixed sequence of acceptable bytes: all ASCII, all below 248!!")
	want, err := token.Generate(bytes.NewReader(base))
	if err != nil {
		t.Fatalf("Generate(base): %v", err)
	}

	high := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(248 + i%8)
		}
		return b
	}
	interleave := func() []byte {
		var out []byte
		for _, c := range base {
			out = append(out, 255, c, 248)
		}
		return out
	}

	tests := []struct {
		name   string
		stream []byte
	}{
		{"EightHighFirst", append(high(8), base...)},
		// More rejected bytes than one chunk holds forces further reads.
		{"WholeChunksRejected", append(high(200), base...)},
		{"Interleaved", interleave()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := token.Generate(bytes.NewReader(tc.stream))
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if got != want {
				t.Errorf("Generate = %q, want %q (rejected bytes were not skipped)", got, want)
			}
		})
	}
}

func TestGenerateReadErrors(t *testing.T) {
	errBroken := errors.New("entropy source broken")
	tests := []struct {
		name string
		r    io.Reader
		want error
	}{
		{"ReaderError", iotest.ErrReader(errBroken), errBroken},
		{"Empty", bytes.NewReader(nil), io.EOF},
		{"ShortRead", bytes.NewReader(make([]byte, 10)), io.ErrUnexpectedEOF},
		{"AllRejectedThenEOF", bytes.NewReader(bytes.Repeat([]byte{255}, 96)), io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := token.Generate(tc.r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Generate error = %v, want %v", err, tc.want)
			}
			if got != "" {
				t.Errorf("Generate returned %q alongside an error", got)
			}
		})
	}
}

func TestGenerateOneReadPerToken(t *testing.T) {
	r := &countingReader{r: mrand.NewChaCha8([32]byte{7})}
	for i := range 1000 {
		r.calls = 0
		if _, err := token.Generate(r); err != nil {
			t.Fatalf("Generate: %v", err)
		}
		if r.calls != 1 {
			t.Fatalf("token %d took %d Read calls, want 1", i, r.calls)
		}
	}
}

func TestGenerateCryptoRand(t *testing.T) {
	const n = 10_000
	seen := make(map[string]bool, n)
	for range n {
		tok, err := token.Generate(rand.Reader)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		if len(tok) != 43 {
			t.Fatalf("len(%q) = %d, want 43", tok, len(tok))
		}
		if !tokenRE.MatchString(tok) {
			t.Fatalf("%q does not match %s", tok, tokenRE)
		}
		if err := token.Parse(tok); err != nil {
			t.Fatalf("Parse(%q) = %v", tok, err)
		}
		if seen[tok] {
			t.Fatalf("duplicate token %q", tok)
		}
		seen[tok] = true
	}
}

// chiSquare returns Pearson's statistic for counts against a uniform
// expectation.
func chiSquare(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	expected := float64(total) / float64(len(counts))
	var x2 float64
	for _, c := range counts {
		d := float64(c) - expected
		x2 += d * d / expected
	}
	return x2
}

func TestGenerateUniform(t *testing.T) {
	const tokens = 20_000 // 640,000 characters, ~10,300 per symbol
	// With 61 degrees of freedom the statistic averages 61 with a standard
	// deviation of about 11; 150 is over 8 deviations out, so a fair
	// generator never fails, while a plain b%62 scores in the thousands.
	const bound = 150.0

	r := mrand.NewChaCha8([32]byte{'u', 'n', 'i', 'f', 'o', 'r', 'm'})
	counts := make([]int, 62)
	for range tokens {
		tok, err := token.Generate(r)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		for i := 5; i < 37; i++ {
			counts[strings.IndexByte(testAlphabet, tok[i])]++
		}
	}
	x2 := chiSquare(counts)
	t.Logf("chi-square over %d characters: %.1f (bound %.0f)", tokens*32, x2, bound)
	if x2 > bound {
		t.Errorf("chi-square = %.1f > %.0f: characters are not uniform; counts %v", x2, bound, counts)
	}

	// The same test must catch modulo bias, or it proves nothing: map the
	// same kind of stream with a plain b%62 and expect it to fail.
	biased := make([]int, 62)
	raw := make([]byte, tokens*32)
	_, _ = mrand.NewChaCha8([32]byte{'b', 'i', 'a', 's'}).Read(raw)
	for _, b := range raw {
		biased[int(b)%62]++
	}
	if bx2 := chiSquare(biased); bx2 <= bound {
		t.Errorf("biased control scored %.1f <= %.0f: the test cannot detect modulo bias", bx2, bound)
	}
}

func TestParse(t *testing.T) {
	valid := withChecksum(t, "otsa_"+"0123456789ABCDEFGHIJKLMNOPQRSTUV")
	body := valid[5:]
	replace := func(i int, with string) string {
		return valid[:i] + with + valid[i+len(with):]
	}
	// A checksum that is well-formed base62 but wrong.
	wrongLast := valid[:42] + string(nextChar(valid[42]))
	badPrefixes := []string{"OTSA_", "otsb_", "otsa-", "Otsa_", "otsa0"}

	tests := []struct {
		name string
		s    string
		want error
	}{
		{"OK", valid, nil},
		{"OKGenerated", seededTokens(t, 1, 1)[0], nil},
		{"OKAllZeroBody", withChecksum(t, "otsa_"+strings.Repeat("0", 32)), nil},
		{"OKAllZBody", withChecksum(t, "otsa_"+strings.Repeat("z", 32)), nil},
		{"Empty", "", token.ErrMalformed},
		{"PrefixOnly", "otsa_", token.ErrMalformed},
		{"UppercasePrefix", badPrefixes[0] + body, token.ErrMalformed},
		{"OtsbPrefix", badPrefixes[1] + body, token.ErrMalformed},
		{"HyphenPrefix", badPrefixes[2] + body, token.ErrMalformed},
		{"CapitalisedPrefix", badPrefixes[3] + body, token.ErrMalformed},
		{"PrefixWithoutUnderscore", badPrefixes[4] + body, token.ErrMalformed},
		{"MissingPrefix", body, token.ErrMalformed},
		{"MissingPrefixPaddedToLength", "00000" + body, token.ErrMalformed},
		{"TooShortByOne", valid[:42], token.ErrMalformed},
		{"TooShort", valid[:20], token.ErrMalformed},
		{"TooLongByOne", valid + "0", token.ErrMalformed},
		{"TooLongDoubled", valid + valid, token.ErrMalformed},
		{"LeadingSpace", " " + valid, token.ErrMalformed},
		{"TrailingNewline", valid + "\n", token.ErrMalformed},
		{"BearerIncluded", "Bearer " + valid, token.ErrMalformed},
		{"HyphenInBody", replace(10, "-"), token.ErrMalformed},
		{"UnderscoreInBody", replace(10, "_"), token.ErrMalformed},
		{"SpaceInBody", replace(20, " "), token.ErrMalformed},
		{"NULInBody", replace(20, "\x00"), token.ErrMalformed},
		{"HighByteInBody", replace(20, "\xff"), token.ErrMalformed},
		{"UnicodeInBody", replace(20, "é"), token.ErrMalformed},
		{"UnicodeEllipsisInBody", replace(30, "…"), token.ErrMalformed},
		{"HyphenInChecksum", replace(40, "-"), token.ErrMalformed},
		{"NULInChecksum", replace(42, "\x00"), token.ErrMalformed},
		{"PlusSlashBase64", replace(8, "+/"), token.ErrMalformed},
		{"WrongChecksumDigit", wrongLast, token.ErrChecksum},
		{"ChecksumAboveMaxUint32", valid[:37] + "zzzzzz", token.ErrChecksum},
		{"ChecksumAllZero", valid[:37] + "000000", token.ErrChecksum},
		{"BodyTypo", replace(12, string(nextChar(valid[12]))), token.ErrChecksum},
		{"SwappedNeighbours", valid[:6] + valid[7:8] + valid[6:7] + valid[8:], token.ErrChecksum},
		{"Hint", token.Hint(valid), token.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := token.Parse(tc.s)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Parse(%q) = %v, want nil", tc.s, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tc.s, err, tc.want)
			}
			for _, other := range []error{token.ErrMalformed, token.ErrChecksum} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("Parse(%q) = %v, which also matches %v", tc.s, err, other)
				}
			}
			if len(tc.s) >= 9 && strings.Contains(err.Error(), tc.s[5:]) {
				t.Errorf("error %q contains part of the input", err)
			}
		})
	}
}

// nextChar returns the base62 character after c, wrapping around.
func nextChar(c byte) byte {
	i := strings.IndexByte(testAlphabet, c)
	return testAlphabet[(i+1)%62]
}

func TestSingleCharacterChange(t *testing.T) {
	h := mustHasher(t, token.Pepper{Version: "v1", Key: testKey(32)})
	var accepted, rejected int
	for _, tok := range seededTokens(t, 25, 42) {
		orig := h.Hash(tok)
		for pos := range token.Length {
			for _, c := range []byte(testAlphabet) {
				if c == tok[pos] {
					continue
				}
				mutated := tok[:pos] + string(c) + tok[pos+1:]
				err := token.Parse(mutated)
				if err == nil {
					accepted++
					if h.Hash(mutated) == orig {
						t.Errorf("%q and %q both parse and share a hash", tok, mutated)
					}
					continue
				}
				if !errors.Is(err, token.ErrMalformed) && !errors.Is(err, token.ErrChecksum) {
					t.Fatalf("Parse(%q) = %v, want a sentinel error", mutated, err)
				}
				rejected++
			}
		}
	}
	t.Logf("single-character changes: %d rejected, %d accepted", rejected, accepted)
	// A one-character change is an error burst of at most 8 bits, which
	// CRC-32 always detects; and a change inside the checksum breaks the
	// canonical encoding. So none should get through.
	if accepted != 0 {
		t.Errorf("%d single-character changes passed Parse, want 0", accepted)
	}
}

func TestHint(t *testing.T) {
	valid := seededTokens(t, 1, 3)[0]
	tests := []struct {
		name string
		s    string
		want string
	}{
		{"Token", valid, "otsa_…" + valid[39:]},
		{"Empty", "", "otsa_…"},
		{"OneChar", "a", "otsa_…"},
		{"ThreeChars", "abc", "otsa_…"},
		{"FourChars", "abcd", "otsa_…abcd"},
		{"FiveChars", "abcde", "otsa_…bcde"},
		{"UnicodeKeepsRunesWhole", "xéééé", "otsa_…éééé"},
		{"ThreeUnicodeRunes", "ééé", "otsa_…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := token.Hint(tc.s)
			if got != tc.want {
				t.Errorf("Hint(%q) = %q, want %q", tc.s, got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("Hint(%q) = %q is not valid UTF-8", tc.s, got)
			}
		})
	}
	if !strings.HasPrefix(token.Hint(valid), "otsa_\u2026") {
		t.Errorf("hint must use the single character U+2026")
	}
}

func TestParseAllocs(t *testing.T) {
	valid := seededTokens(t, 1, 9)[0]
	tests := []struct {
		name string
		s    string
	}{
		{"Valid", valid},
		{"BadChecksum", valid[:42] + string(nextChar(valid[42]))},
		{"Malformed", "otsa_-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if allocs := testing.AllocsPerRun(100, func() { _ = token.Parse(tc.s) }); allocs != 0 {
				t.Errorf("Parse allocates %.1f times, want 0", allocs)
			}
		})
	}
}

func TestChecksumMatchesCRC32(t *testing.T) {
	// Guards the package's own CRC loop against the standard one across many
	// inputs, beyond the few known answers.
	for _, tok := range seededTokens(t, 500, 11) {
		want := base62CRC(t, crc32.ChecksumIEEE([]byte(tok[:37])))
		if tok[37:] != want {
			t.Fatalf("checksum of %q = %q, want %q", tok[:37], tok[37:], want)
		}
	}
}
