package secrets_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/secrets"
	"github.com/opentrace/service-accounts/pkg/token"
)

func TestParse(t *testing.T) {
	const utf8Key = "пеппер-ключ-с-юникодом-достаточно-длинный" // 32+ bytes, fewer runes

	tests := []struct {
		name         string
		secret       string
		wantCurrent  [2]string // version, key
		wantNext     *[2]string
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
			name:        "WithNext",
			secret:      secretJSON(t, "currentVersion", "1", "current", keyV1, "nextVersion", "2", "next", keyV2),
			wantCurrent: [2]string{"1", keyV1},
			wantNext:    &[2]string{"2", keyV2},
		},
		{
			name:         "WithNextAndPrevious",
			secret:       secretJSON(t, "currentVersion", "2", "current", keyV2, "nextVersion", "3", "next", keyV3, "previousVersion", "1", "previous", keyV1),
			wantCurrent:  [2]string{"2", keyV2},
			wantNext:     &[2]string{"3", keyV3},
			wantPrevious: &[2]string{"1", keyV1},
		},
		{
			name:        "NextVersionWithoutNextIsIgnored",
			secret:      secretJSON(t, "currentVersion", "2", "current", keyV2, "nextVersion", "3"),
			wantCurrent: [2]string{"2", keyV2},
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
			want := []*token.Hasher{kr.Current}
			for _, o := range []struct {
				name string
				got  *token.Hasher
				want *[2]string
			}{{"next", kr.Next, tt.wantNext}, {"previous", kr.Previous, tt.wantPrevious}} {
				if o.want == nil {
					if o.got != nil {
						t.Errorf("%s = %v, want nil", o.name, o.got)
					}
					continue
				}
				wantHasher(t, o.name, o.got, o.want[0], o.want[1])
				want = append(want, o.got)
			}
			if hs := kr.Hashers(); !slices.Equal(hs, want) {
				t.Errorf("Hashers() = %v, want current, next, previous: %v", hs, want)
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
		{name: "NextWithoutVersion", secret: secretJSON(t, "currentVersion", "2", "current", keyV2, "next", keyV3), wantMsg: "nextVersion is missing"},
		{name: "NextVersionEqualsCurrent", secret: secretJSON(t, "currentVersion", "2", "current", keyV2, "nextVersion", "2", "next", keyV3), wantMsg: "nextVersion equals currentVersion"},
		{name: "NextNotString", secret: `{"currentVersion":"2","current":"` + keyV2 + `","nextVersion":"3","next":7}`, wantMsg: "next is not a string"},
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
			if kr.Current != nil || kr.Next != nil || kr.Previous != nil {
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
