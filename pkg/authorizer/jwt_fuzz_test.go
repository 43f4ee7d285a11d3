package authorizer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/opentrace/service-accounts/pkg/testkit"
)

// FuzzJWT checks (*Users).Verify on arbitrary strings and on mutations of a valid user JWT:
// it never panics; it accepts a token only if the token verifies independently against the
// issuer's public keys (jws.Verify) with iss equal to the issuer, exp not passed, nbf reached
// and a string sub; the user it returns is what those claims say (Subject = sub, and OrgID
// and Role from org_id and a known org_role, else both empty; Verify does not judge the org
// id, the authorizer does); the exact genuine JWTs are accepted; and a refusal's error text
// never contains the presented token.
//
// Seeds in testdata/fuzz/FuzzJWT may name the valid admin JWT, or its segments, by the
// placeholders {jwt}, {header}, {payload} and {signature}; the seeds below add swapped and
// stripped segments, alg none and HS256 re-signings, changed key ids and tampered claims.
func FuzzJWT(f *testing.F) {
	fe := newFuzzEnv(f)
	users := fe.auth.Users
	valid := fe.creds["{admin}"]
	seg := strings.Split(valid, ".")
	h, p, s := seg[0], seg[1], seg[2]
	expand := strings.NewReplacer("{jwt}", valid, "{header}", h, "{payload}", p, "{signature}", s)

	for _, seed := range append(fuzzJWTMutations(f, fe, h, p, s),
		valid, fe.creds["{member}"], fe.creds["{jwt_wildcard}"], fe.creds["{jwt_no_org}"],
		fe.creds["{jwt_expired}"], fe.creds["{jwt_iss}"], fe.creds["{jwt_forged}"], fe.creds["{jwt_future}"],
		fe.creds["{jwt_no_exp}"], fe.creds["{jwt_other}"],
		"", ".", "..", "a.b.c", "a.b.c.d.e", fe.live, strings.Repeat("A", 1<<12)+"."+p+"."+s,
	) {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, in string) {
		raw := expand.Replace(in)
		u, err := users.Verify(fe.ctx, raw)
		c, genuine := fe.verifyJWT(raw)
		if err != nil {
			if len(raw) >= 16 && strings.Contains(err.Error(), raw) {
				t.Fatalf("Verify's error %q contains the presented token", err)
			}
			if fe.jwts[raw] {
				t.Fatalf("Verify refused the genuine JWT %q: %v", raw, err)
			}
			return
		}
		if !genuine {
			t.Fatalf("Verify accepted %q as %+v, but it does not verify against the issuer's keys with a valid iss, exp, nbf and sub", raw, u)
		}
		if u.Subject != c.sub || u.OrgID != c.org || u.Role != c.role {
			t.Fatalf("Verify(%q) = %+v; its claims say sub %q, org %q, role %q", raw, u, c.sub, c.org, c.role)
		}
	})
}

// fuzzJWTMutations returns mutations of the valid JWT h.p.s that an attacker without the
// issuer's key can make.
func fuzzJWTMutations(tb testing.TB, fe *fuzzEnv, h, p, s string) []string {
	tb.Helper()
	enc := base64.RawURLEncoding
	b64 := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return enc.EncodeToString(b)
	}
	var claims map[string]any
	raw, err := enc.DecodeString(p)
	if err != nil || json.Unmarshal(raw, &claims) != nil {
		tb.Fatalf("payload of the valid JWT: %v", err)
	}
	tampered := func(k string, v any) string {
		c := map[string]any{}
		for ck, cv := range claims {
			c[ck] = cv
		}
		c[k] = v
		return b64(c)
	}
	kid := fe.idp.KeyID()
	hs256 := func(secret []byte) string {
		signingInput := b64(map[string]any{"alg": "HS256", "kid": kid, "typ": "JWT"}) + "." + p
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(signingInput))
		return signingInput + "." + enc.EncodeToString(m.Sum(nil))
	}
	pub, err := json.Marshal(fe.keys)
	if err != nil {
		tb.Fatal(err)
	}

	// A token signed with the attacker's own key, which its header carries (jwk) or points
	// to (jku), under the issuer's key id.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	attacker, err := jwk.Import(priv)
	if err != nil {
		tb.Fatal(err)
	}
	attackerPub, err := attacker.PublicKey()
	if err != nil {
		tb.Fatal(err)
	}
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{jws.KeyIDKey: kid, jws.JWKKey: attackerPub, jws.JWKSetURLKey: "https://evil.example/jwks"} {
		if err := hdr.Set(k, v); err != nil {
			tb.Fatal(err)
		}
	}
	embedded, err := jws.Sign(raw, jws.WithKey(jwa.ES256(), attacker, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		tb.Fatal(err)
	}

	last := s[len(s)-1]
	flipped := s[:len(s)-1] + string("AB"[(strings.IndexByte("AB", last)+1)%2])
	return []string{
		p + "." + h + "." + s, h + "." + s + "." + p, s + "." + p + "." + h, h + "." + p + "." + p, h + "." + h + "." + s,
		h + "." + p + ".", h + ".." + s, "." + p + "." + s, h + "." + p, h + "." + p + "." + s + "." + s,
		b64(map[string]any{"alg": "none", "kid": kid, "typ": "JWT"}) + "." + p + ".",
		b64(map[string]any{"alg": "none", "kid": kid, "typ": "JWT"}) + "." + p + "." + s,
		b64(map[string]any{"alg": "NONE", "kid": kid}) + "." + p + ".",
		hs256(pub), hs256([]byte(s)), hs256(nil), hs256([]byte("secret")),
		b64(map[string]any{"alg": "ES256", "kid": "local-2", "typ": "JWT"}) + "." + p + "." + s,
		b64(map[string]any{"alg": "ES256", "kid": "", "typ": "JWT"}) + "." + p + "." + s,
		b64(map[string]any{"alg": "ES256", "typ": "JWT"}) + "." + p + "." + s,
		b64(map[string]any{"alg": "ES256", "kid": 1}) + "." + p + "." + s,
		b64(map[string]any{"alg": "ES384", "kid": kid, "typ": "JWT"}) + "." + p + "." + s,
		h + "." + tampered("org_id", "org_b") + "." + s,
		h + "." + tampered("org_role", "org:owner") + "." + s,
		h + "." + tampered("exp", fe.now.Add(24*time.Hour*365).Unix()) + "." + s,
		h + "." + tampered("iss", "https://evil.example") + "." + s,
		h + "." + tampered("sub", "user_2") + "." + s,
		h + "." + p + "." + flipped,
		h + "." + p + "." + s + "==",
		h + "=." + p + "." + s,
		" " + h + "." + p + "." + s + "\n",
		`{"payload":"` + p + `","protected":"` + h + `","signature":"` + s + `"}`,
		string(embedded),
	}
}

// TestFuzzJWTCorpus keeps the committed seeds meaningful: files named valid* hold a JWT
// Verify accepts, and files named bad* one it refuses.
func TestFuzzJWTCorpus(t *testing.T) {
	fe := newFuzzEnv(t)
	valid := fe.creds["{admin}"]
	seg := strings.Split(valid, ".")
	expand := strings.NewReplacer("{jwt}", valid, "{header}", seg[0], "{payload}", seg[1], "{signature}", seg[2])
	for _, f := range testkit.Corpus(t, "FuzzJWT", 6) {
		if !strings.HasPrefix(f.Name, "valid") && !strings.HasPrefix(f.Name, "bad") {
			continue // a file the fuzzer wrote: a regression input, checked by FuzzJWT itself
		}
		t.Run(f.Name, func(t *testing.T) {
			var in string
			f.Scan(t, &in)
			raw := expand.Replace(in)
			_, err := fe.auth.Users.Verify(fe.ctx, raw)
			if wantValid := strings.HasPrefix(f.Name, "valid"); wantValid != (err == nil) {
				t.Errorf("Verify(%q) = %v; file name says valid=%v", raw, err, wantValid)
			}
		})
	}
}
