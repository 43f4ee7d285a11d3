package token_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/token"
)

func referenceHMAC(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func TestHasherMatchesHMAC(t *testing.T) {
	messages := append(seededTokens(t, 5, 5),
		"",
		"x",
		strings.Repeat("a", 192), // the longest input hashed on the stack
		strings.Repeat("b", 193), // the shortest that takes the slow path
		strings.Repeat("c", 1000),
	)
	tests := []struct {
		name   string
		keyLen int
	}{
		{"Key32", 32},
		{"Key63", 63},
		{"Key64", 64},
		{"Key65HashedFirst", 65},
		{"Key200HashedFirst", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(tc.keyLen)
			h := mustHasher(t, token.Pepper{Version: "v7", Key: key})
			if h.Version() != "v7" {
				t.Errorf("Version() = %q, want %q", h.Version(), "v7")
			}
			for _, msg := range messages {
				got := h.Hash(msg)
				if want := referenceHMAC(key, msg); got != want {
					t.Errorf("Hash(%.20q…) = %s, want %s", msg, got, want)
				}
				if len(got) != 64 || strings.ToLower(got) != got {
					t.Errorf("Hash(%.20q…) = %q, want 64 lowercase hex characters", msg, got)
				}
			}
		})
	}
}

func TestHasherKeyIsCopied(t *testing.T) {
	key := testKey(32)
	h := mustHasher(t, token.Pepper{Version: "v1", Key: key})
	tok := seededTokens(t, 1, 2)[0]
	want := referenceHMAC(testKey(32), tok)
	clear(key) // a caller zeroing its copy must not change the hasher
	if got := h.Hash(tok); got != want {
		t.Errorf("Hash after the caller cleared its key = %s, want %s", got, want)
	}
}

func TestHasherDistinguishesPeppers(t *testing.T) {
	tok := seededTokens(t, 1, 4)[0]
	a := mustHasher(t, token.Pepper{Version: "v1", Key: testKey(32)})
	b := mustHasher(t, token.Pepper{Version: "v2", Key: testKey(33)})
	if a.Hash(tok) == b.Hash(tok) {
		t.Error("different peppers gave the same hash")
	}
}

func TestNewHasherRejects(t *testing.T) {
	secret := []byte("short-but-secret-key-abcdefghij") // 31 bytes
	tests := []struct {
		name string
		p    token.Pepper
	}{
		{"NilKey", token.Pepper{Version: "v1"}},
		{"EmptyKey", token.Pepper{Version: "v1", Key: []byte{}}},
		{"Key31", token.Pepper{Version: "v1", Key: secret}},
		{"EmptyVersion", token.Pepper{Key: testKey(32)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := token.NewHasher(tc.p)
			if err == nil {
				t.Fatalf("NewHasher(%v) = %v, nil; want an error", tc.p, h)
			}
			if h != nil {
				t.Errorf("NewHasher returned a Hasher alongside %v", err)
			}
			if len(tc.p.Key) > 0 {
				assertNoKey(t, err.Error(), tc.p.Key)
			}
		})
	}
}

func TestHasherAllocs(t *testing.T) {
	h := mustHasher(t, token.Pepper{Version: "v1", Key: testKey(32)})
	tok := seededTokens(t, 1, 6)[0]
	if allocs := testing.AllocsPerRun(100, func() { _ = h.Hash(tok) }); allocs != 1 {
		t.Errorf("Hash allocates %.1f times, want exactly 1", allocs)
	}
}

// assertNoKey fails if out contains key in any of the encodings a careless
// print would use, or the derived pads, which give the key back.
func assertNoKey(t *testing.T, out string, key []byte) {
	t.Helper()
	forms := map[string]string{
		"raw":            string(key),
		"hex":            hex.EncodeToString(key),
		"HEX":            strings.ToUpper(hex.EncodeToString(key)),
		"base64":         base64.StdEncoding.EncodeToString(key),
		"byte list":      strings.Trim(fmt.Sprint(key), "[]"),
		"go byte list":   strings.TrimPrefix(fmt.Sprintf("%#v", key), "[]byte"),
		"quoted":         strings.Trim(fmt.Sprintf("%q", key), `"`),
		"ipad byte list": strings.Trim(fmt.Sprint(xorPad(key, 0x36)), "[]"),
		"opad byte list": strings.Trim(fmt.Sprint(xorPad(key, 0x5c)), "[]"),
		"ipad hex":       hex.EncodeToString(xorPad(key, 0x36)),
	}
	for name, f := range forms {
		if f != "" && strings.Contains(out, f) {
			t.Errorf("output contains the key (%s): %s", name, out)
		}
	}
}

func xorPad(key []byte, pad byte) []byte {
	out := make([]byte, len(key))
	for i, k := range key {
		out[i] = k ^ pad
	}
	return out
}

// leakKey is printable so that a leak shows up in every encoding.
var leakKey = []byte("S3cr3t-Pepper-Key-Never-In-Logs-0123456789")

func TestPepperAndHasherDoNotLeakThroughFmt(t *testing.T) {
	p := token.Pepper{Version: "v3", Key: leakKey}
	h := mustHasher(t, p)
	type config struct {
		Pepper token.Pepper
		Hasher *token.Hasher
	}
	// fmt cannot call methods on unexported fields, so these are printed
	// field by field; only the Hasher can be protected there (a Pepper's
	// Key is an exported field by contract).
	type service struct {
		hasher    *token.Hasher
		hasherVal token.Hasher
	}
	values := map[string]any{
		"Pepper":                 p,
		"*Pepper":                &p,
		"*Hasher":                h,
		"Hasher":                 *h,
		"StructOfBoth":           config{p, h},
		"*StructOfBoth":          &config{p, h},
		"SliceOfPeppers":         []token.Pepper{p, p},
		"MapOfPeppers":           map[string]token.Pepper{"current": p},
		"SliceOfAny":             []any{p, h},
		"UnexportedHasherFields": service{h, *h},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v", "%-#v"}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for _, verb := range verbs {
				out := fmt.Sprintf(verb, v)
				assertNoKey(t, out, leakKey)
			}
			assertNoKey(t, fmt.Sprint(v), leakKey)
			assertNoKey(t, fmt.Errorf("load pepper: %v", v).Error(), leakKey)
		})
	}

	t.Run("ShowsVersionAndRedacted", func(t *testing.T) {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			for _, v := range []any{p, h} {
				out := fmt.Sprintf(verb, v)
				if !strings.Contains(out, "v3") || !strings.Contains(out, "[REDACTED]") {
					t.Errorf("Sprintf(%q, %T) = %q, want the version and [REDACTED]", verb, v, out)
				}
			}
		}
	})

	t.Run("NilHasher", func(t *testing.T) {
		var nh *token.Hasher
		if out := fmt.Sprintf("%v %#v", nh, nh); !strings.Contains(out, "[REDACTED]") {
			t.Errorf("nil *Hasher printed %q", out)
		}
	})
}

func TestPepperAndHasherDoNotLeakThroughSlog(t *testing.T) {
	p := token.Pepper{Version: "v3", Key: leakKey}
	h := mustHasher(t, p)
	handlers := []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"JSON", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{"Text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	}
	for _, hd := range handlers {
		t.Run(hd.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(hd.new(&buf))
			log.Info("pepper loaded",
				"pepper", p,
				slog.Any("pepperPtr", &p),
				slog.Any("hasher", h),
				slog.Any("config", struct{ Current, Previous token.Pepper }{p, p}),
				slog.Any("peppers", []token.Pepper{p}),
			)
			log.With("pepper", p).Error("rotation failed", "err", fmt.Errorf("with %v", p))
			out := buf.String()
			assertNoKey(t, out, leakKey)
			if !strings.Contains(out, "[REDACTED]") || !strings.Contains(out, "v3") {
				t.Errorf("log lacks the version or the redaction marker: %s", out)
			}
		})
	}

	t.Run("LogValue", func(t *testing.T) {
		for name, v := range map[string]slog.LogValuer{"Pepper": p, "*Hasher": h} {
			got := map[string]string{}
			for _, a := range v.LogValue().Group() {
				got[a.Key] = a.Value.String()
			}
			if len(got) != 2 || got["version"] != "v3" || got["key"] != "[REDACTED]" {
				t.Errorf("%s.LogValue() = %v, want version v3 and key [REDACTED]", name, got)
			}
		}
	})

	t.Run("JSONShape", func(t *testing.T) {
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "pepper", p)
		var rec struct {
			Pepper map[string]string `json:"pepper"`
		}
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("unmarshal %s: %v", buf.String(), err)
		}
		if rec.Pepper["version"] != "v3" || rec.Pepper["key"] != "[REDACTED]" {
			t.Errorf("pepper logged as %v, want version v3 and key [REDACTED]", rec.Pepper)
		}
	})
}

func TestPepperJSONDoesNotLeak(t *testing.T) {
	p := token.Pepper{Version: "v3", Key: leakKey}
	out, err := json.Marshal(struct{ P token.Pepper }{p})
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	assertNoKey(t, string(out), leakKey)

	// Reading a pepper from a secret's JSON must still work.
	var got token.Pepper
	in := `{"Version":"v9","Key":"` + base64.StdEncoding.EncodeToString(leakKey) + `"}`
	if err := json.Unmarshal([]byte(in), &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if got.Version != "v9" || !bytes.Equal(got.Key, leakKey) {
		t.Errorf("Unmarshal = version %q, key of %d bytes; want v9 and the key", got.Version, len(got.Key))
	}
}

// TestPanicDoesNotLeakKey re-runs the test binary so that a real, unrecovered
// panic is printed by the runtime, and checks what reaches stderr.
func TestPanicDoesNotLeakKey(t *testing.T) {
	const env = "TOKEN_TEST_PANIC_WITH"
	switch os.Getenv(env) {
	case "pepper":
		panic(token.Pepper{Version: "v3", Key: leakKey})
	case "hasher":
		h, _ := token.NewHasher(token.Pepper{Version: "v3", Key: leakKey})
		panic(h)
	case "error":
		panic(fmt.Errorf("wrapped: %+v", token.Pepper{Version: "v3", Key: leakKey}))
	}
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	for _, what := range []string{"pepper", "hasher", "error"} {
		t.Run(what, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestPanicDoesNotLeakKey$")
			cmd.Env = append(os.Environ(), env+"="+what)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("child did not fail: err=%v output=%s", err, out)
			}
			if !strings.Contains(string(out), "panic:") || !strings.Contains(string(out), "[REDACTED]") {
				t.Fatalf("child output lacks the panic or the redaction marker: %s", out)
			}
			assertNoKey(t, string(out), leakKey)
		})
	}
}
