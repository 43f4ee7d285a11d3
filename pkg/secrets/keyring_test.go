package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/secrets"
	"github.com/opentrace/service-accounts/pkg/token"
)

func TestKeyringHashers(t *testing.T) {
	cur := mustStatic(t, token.Pepper{Version: "2", Key: []byte(keyV2)}, nil)
	curKR, _ := cur.Keyring(context.Background())
	both := mustStatic(t, token.Pepper{Version: "2", Key: []byte(keyV2)}, &token.Pepper{Version: "1", Key: []byte(keyV1)})
	bothKR, _ := both.Keyring(context.Background())

	tests := []struct {
		name string
		kr   secrets.Keyring
		want []string // versions in order
	}{
		{name: "Zero", kr: secrets.Keyring{}, want: nil},
		{name: "CurrentOnly", kr: curKR, want: []string{"2"}},
		{name: "CurrentThenPrevious", kr: bothKR, want: []string{"2", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, h := range tt.kr.Hashers() {
				got = append(got, h.Version())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("Hashers() versions = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNoKeyMaterialInOutput prints every type that holds key material in every way a caller
// might, including struct fields fmt prints without calling methods.
func TestNoKeyMaterialInOutput(t *testing.T) {
	static := mustStatic(t, token.Pepper{Version: "2", Key: []byte(keyV2)}, &token.Pepper{Version: "1", Key: []byte(keyV1)})
	kr, err := static.Keyring(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := newSMServer(t)
	srv.set(okSecret(secretJSON(t, "currentVersion", "3", "current", keyV3, "previousVersion", "2", "previous", keyV2)))
	sm := secrets.NewSecretsManager(srv.client(t), testSecretID)
	if _, err := sm.Keyring(context.Background()); err != nil {
		t.Fatal(err)
	}

	values := map[string]any{
		"Keyring":            kr,
		"*Keyring":           &kr,
		"*Static":            static,
		"Static":             *static,
		"*SecretsManager":    sm,
		"ExportedField":      struct{ K secrets.Keyring }{kr},
		"UnexportedField":    struct{ k secrets.Keyring }{kr},
		"Slice":              []secrets.Keyring{kr},
		"Hashers":            kr.Hashers(),
		"UnexportedInStatic": struct{ s secrets.Static }{*static},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"}
	for name, v := range values {
		for _, verb := range verbs {
			assertNoLeak(t, name+" "+verb, fmt.Sprintf(verb, v))
		}
	}

	t.Run("Slog", func(t *testing.T) {
		for name, newHandler := range map[string]func(*bytes.Buffer) slog.Handler{
			"JSON": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
			"Text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		} {
			var buf bytes.Buffer
			l := slog.New(newHandler(&buf))
			l.Info("values", "keyring", kr, "static", static, "sm", sm, "hashers", kr.Hashers())
			assertNoLeak(t, name+" log", buf.String())
			if !strings.Contains(buf.String(), "current") {
				t.Errorf("%s log does not show the keyring's versions: %s", name, buf.String())
			}
		}
	})

	t.Run("StringShowsVersions", func(t *testing.T) {
		if got, want := fmt.Sprint(kr), "secrets.Keyring{Current: 2, Next: <none>, Previous: 1}"; got != want {
			t.Errorf("Sprint(keyring) = %q, want %q", got, want)
		}
	})
}

func TestNewStatic(t *testing.T) {
	p := func(version, key string) token.Pepper { return token.Pepper{Version: version, Key: []byte(key)} }
	pp := func(version, key string) *token.Pepper { v := p(version, key); return &v }

	tests := []struct {
		name    string
		ring    secrets.Ring
		wantErr string
	}{
		{name: "CurrentOnly", ring: secrets.Ring{Current: p("1", keyV1)}},
		{name: "WithNext", ring: secrets.Ring{Current: p("1", keyV1), Next: pp("2", keyV2)}},
		{name: "WithPrevious", ring: secrets.Ring{Current: p("2", keyV2), Previous: pp("1", keyV1)}},
		{name: "WithBoth", ring: secrets.Ring{Current: p("2", keyV2), Next: pp("3", keyV3), Previous: pp("1", keyV1)}},
		{name: "EmptyVersion", ring: secrets.Ring{Current: p("", keyV1)}, wantErr: "currentVersion is missing"},
		{name: "EmptyKey", ring: secrets.Ring{Current: p("1", "")}, wantErr: "current is missing"},
		{name: "ShortKey", ring: secrets.Ring{Current: p("1", keyV1[:31])}, wantErr: "current is 31 bytes"},
		{name: "PreviousEmptyVersion", ring: secrets.Ring{Current: p("2", keyV2), Previous: pp("", keyV1)}, wantErr: "previousVersion is missing"},
		{name: "PreviousSameVersion", ring: secrets.Ring{Current: p("2", keyV2), Previous: pp("2", keyV1)}, wantErr: "previousVersion equals currentVersion"},
		{name: "PreviousShortKey", ring: secrets.Ring{Current: p("2", keyV2), Previous: pp("1", "short")}, wantErr: "previous is 5 bytes"},
		{name: "NextEmptyVersion", ring: secrets.Ring{Current: p("1", keyV1), Next: pp("", keyV2)}, wantErr: "nextVersion is missing"},
		{name: "NextSameVersion", ring: secrets.Ring{Current: p("1", keyV1), Next: pp("1", keyV2)}, wantErr: "nextVersion equals currentVersion"},
		{name: "NextShortKey", ring: secrets.Ring{Current: p("1", keyV1), Next: pp("2", "short")}, wantErr: "next is 5 bytes"},
		{name: "PreviousSameAsNext", ring: secrets.Ring{Current: p("2", keyV2), Next: pp("3", keyV3), Previous: pp("3", keyV1)}, wantErr: "previousVersion equals nextVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := secrets.NewStatic(tt.ring)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("NewStatic = %v, want error", s)
				}
				if !errors.Is(err, secrets.ErrInvalidKeyring) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want ErrInvalidKeyring containing %q", err, tt.wantErr)
				}
				assertNoLeak(t, "error", err.Error())
				return
			}
			if err != nil {
				t.Fatalf("NewStatic: %v", err)
			}
			for range 2 { // the same answer every time
				kr, err := s.Keyring(context.Background())
				if err != nil {
					t.Fatalf("Keyring: %v", err)
				}
				wantHasher(t, "current", kr.Current, tt.ring.Current.Version, string(tt.ring.Current.Key))
				for _, o := range []struct {
					name string
					got  *token.Hasher
					want *token.Pepper
				}{{"next", kr.Next, tt.ring.Next}, {"previous", kr.Previous, tt.ring.Previous}} {
					if o.want == nil {
						if o.got != nil {
							t.Errorf("%s = %v, want nil", o.name, o.got)
						}
						continue
					}
					wantHasher(t, o.name, o.got, o.want.Version, string(o.want.Key))
				}
			}
		})
	}
}

// Static and SecretsManager are interchangeable behind Source.
var (
	_ secrets.Source = (*secrets.Static)(nil)
	_ secrets.Source = (*secrets.SecretsManager)(nil)
)

func TestStaticKeyring(t *testing.T) {
	kr, err := secrets.Parse([]byte(secretJSON(t, "currentVersion", "2", "current", keyV2, "nextVersion", "3", "next", keyV3)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := secrets.StaticKeyring(kr).Keyring(context.Background())
	if err != nil || got.Current != kr.Current || got.Next != kr.Next {
		t.Fatalf("StaticKeyring serves %v, %v; want the keyring it was given", got, err)
	}
}
