package secrets_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/opentrace/service-accounts/pkg/secrets"
)

func TestParse(t *testing.T) {
	const utf8Key = "пеппер-ключ-с-юникодом-достаточно-длинный" // 32+ bytes, fewer runes

	tests := []struct {
		name         string
		secret       string
		wantCurrent  [2]string // version, key
		wantPrevious *[2]string
	}{
		{
			name:        "CurrentOnly",
			secret:      secretJSON(t, "currentVersion", "1", "current", keyV1),
			wantCurrent: [2]string{"1", keyV1},
		},
		{
			name:         "WithPrevious",
			secret:       secretJSON(t, "currentVersion", "2", "current", keyV2, "previousVersion", "1", "previous", keyV1),
			wantCurrent:  [2]string{"2", keyV2},
			wantPrevious: &[2]string{"1", keyV1},
		},
		{
			name:        "PreviousVersionWithoutPreviousIsIgnored",
			secret:      secretJSON(t, "currentVersion", "2", "current", keyV2, "previousVersion", "1"),
			wantCurrent: [2]string{"2", keyV2},
		},
		{
			name:        "UnknownFieldsAllowed",
			secret:      `{"currentVersion":"1","current":"` + keyV1 + `","rotatedAt":"2025-01-01","n":3,"o":{"x":[1]}}`,
			wantCurrent: [2]string{"1", keyV1},
		},
		{
			name:        "KeyIsUTF8Bytes",
			secret:      secretJSON(t, "currentVersion", "1", "current", utf8Key),
			wantCurrent: [2]string{"1", utf8Key},
		},
		{
			name:        "ExactlyMinimumLength",
			secret:      secretJSON(t, "currentVersion", "1", "current", strings.Repeat("k", 32)),
			wantCurrent: [2]string{"1", strings.Repeat("k", 32)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := secrets.Parse([]byte(tt.secret))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantHasher(t, "current", kr.Current, tt.wantCurrent[0], tt.wantCurrent[1])
			hs := kr.Hashers()
			if tt.wantPrevious == nil {
				if kr.Previous != nil {
					t.Errorf("Previous = %v, want nil", kr.Previous)
				}
				if len(hs) != 1 || hs[0] != kr.Current {
					t.Errorf("Hashers() = %v, want [Current]", hs)
				}
			} else {
				wantHasher(t, "previous", kr.Previous, tt.wantPrevious[0], tt.wantPrevious[1])
				if len(hs) != 2 || hs[0] != kr.Current || hs[1] != kr.Previous {
					t.Errorf("Hashers() = %v, want [Current Previous]", hs)
				}
			}
			if got, want := kr.CursorKey(), cursorKeyFor(tt.wantCurrent[1]); !bytes.Equal(got, want) {
				t.Errorf("CursorKey() = %x, want %x", got, want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		wantMsg string // a fragment the error must contain
	}{
		{name: "Empty", secret: ``, wantMsg: "not valid JSON"},
		{name: "SyntaxErrorEchoingKey", secret: `{"currentVersion":"1","current":` + keyV1 + `}`, wantMsg: "not valid JSON"},
		{name: "Truncated", secret: `{"currentVersion":"1","current":"` + keyV1, wantMsg: "not valid JSON"},
		{name: "TrailingData", secret: secretJSON(t, "currentVersion", "1", "current", keyV1) + keyV2, wantMsg: "not valid JSON"},
		{name: "NotAnObject", secret: `"` + keyV1 + `"`, wantMsg: "not a JSON object"},
		{name: "Array", secret: `["` + keyV1 + `"]`, wantMsg: "not a JSON object"},
		{name: "CurrentNotString", secret: `{"currentVersion":"1","current":12345678901234567890123456789012345678901234567890}`, wantMsg: "current is not a string"},
		{name: "CurrentObject", secret: `{"currentVersion":"1","current":{"k":"` + keyV1 + `"}}`, wantMsg: "current is not a string"},
		{name: "VersionNumber", secret: `{"currentVersion":1,"current":"` + keyV1 + `"}`, wantMsg: "currentVersion is not a string"},
		{name: "Null", secret: `null`, wantMsg: "currentVersion is missing"},
		{name: "EmptyObject", secret: `{}`, wantMsg: "currentVersion is missing"},
		{name: "MissingCurrent", secret: secretJSON(t, "currentVersion", "1"), wantMsg: "current is missing"},
		{name: "EmptyCurrent", secret: secretJSON(t, "currentVersion", "1", "current", ""), wantMsg: "current is missing"},
		{name: "MissingCurrentVersion", secret: secretJSON(t, "current", keyV1), wantMsg: "currentVersion is missing"},
		{name: "ShortCurrent", secret: secretJSON(t, "currentVersion", "1", "current", keyV1[:31]), wantMsg: "current is 31 bytes"},
		{name: "PreviousWithoutVersion", secret: secretJSON(t, "currentVersion", "2", "current", keyV2, "previous", keyV1), wantMsg: "previousVersion is missing"},
		{name: "PreviousVersionEqualsCurrent", secret: secretJSON(t, "currentVersion", "1", "current", keyV2, "previousVersion", "1", "previous", keyV1), wantMsg: "previousVersion equals currentVersion"},
		{name: "ShortPrevious", secret: secretJSON(t, "currentVersion", "2", "current", keyV2, "previousVersion", "1", "previous", keyV1[:20]), wantMsg: "previous is 20 bytes"},
		{name: "PreviousNotString", secret: `{"currentVersion":"2","current":"` + keyV2 + `","previousVersion":"1","previous":true}`, wantMsg: "previous is not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := secrets.Parse([]byte(tt.secret))
			if err == nil {
				t.Fatalf("Parse succeeded with %v, want error", kr)
			}
			if !errors.Is(err, secrets.ErrInvalidKeyring) {
				t.Errorf("error %q does not wrap ErrInvalidKeyring", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			assertNoLeak(t, "error", err.Error())
			if kr.Current != nil || kr.Previous != nil || kr.CursorKey() != nil {
				t.Errorf("Parse returned a non-zero keyring %v with its error", kr)
			}
		})
	}
}

// TestParseSyntaxErrorHidesInput pins down why Parse replaces encoding/json's message: the
// standard error quotes the offending character of the secret.
func TestParseSyntaxErrorHidesInput(t *testing.T) {
	input := []byte(`{"current": Zsecret}`)
	var v map[string]any
	if err := json.Unmarshal(input, &v); err == nil || !strings.Contains(err.Error(), "'Z'") {
		t.Fatalf("encoding/json no longer echoes input (%v); the reason for the generic message is gone", err)
	}
	_, err := secrets.Parse(input)
	if err == nil || strings.Contains(err.Error(), "Z") {
		t.Fatalf("Parse error = %v, want one without input characters", err)
	}
}

func TestGenerate(t *testing.T) {
	alnum64 := regexp.MustCompile(`^[A-Za-z0-9]{64}$`)

	t.Run("OK", func(t *testing.T) {
		a, err := secrets.Generate(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, err := secrets.Generate(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(a, b) {
			t.Fatal("two Generate calls returned the same secret")
		}
		for _, secret := range [][]byte{a, b} {
			var fields map[string]string
			if err := json.Unmarshal(secret, &fields); err != nil {
				t.Fatal(err)
			}
			if len(fields) != 2 || fields["currentVersion"] != "1" || !alnum64.MatchString(fields["current"]) {
				t.Errorf("Generate() fields = %v, want currentVersion 1 and 64 alphanumerics", fields)
			}
			kr, err := secrets.Parse(secret)
			if err != nil {
				t.Fatalf("Parse(Generate()): %v", err)
			}
			wantHasher(t, "current", kr.Current, "1", fields["current"])
			if kr.Previous != nil {
				t.Error("generated secret has a previous pepper")
			}
		}
	})

	tests := []struct {
		name string
		r    func() *bytes.Reader
		err  bool
	}{
		// 0xF8 and up are rejected to avoid modulo bias, so a source of only those must not hang.
		{name: "OnlyRejectedBytes", r: func() *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{0xff}, 1<<16)) }, err: true},
		{name: "ShortReader", r: func() *bytes.Reader { return bytes.NewReader(make([]byte, 10)) }, err: true},
		{name: "Deterministic", r: func() *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{0, 61, 62, 247, 248}, 100)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secrets.Generate(tt.r())
			if tt.err {
				if err == nil {
					t.Fatalf("Generate = %s, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// 0→A, 61→9, 62→A, 247→9; 248 is skipped.
			want := `{"currentVersion":"1","current":"` + strings.Repeat("A9A9", 16) + `"}`
			if string(got) != want {
				t.Errorf("Generate = %s, want %s", got, want)
			}
		})
	}

	t.Run("ReaderError", func(t *testing.T) {
		boom := errors.New("entropy unavailable")
		if _, err := secrets.Generate(iotest.ErrReader(boom)); !errors.Is(err, boom) {
			t.Fatalf("Generate error = %v, want %v", err, boom)
		}
	})
}
