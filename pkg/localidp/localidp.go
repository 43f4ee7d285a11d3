// Package localidp is a local identity provider for dashboard users: it signs user JWTs the
// way the real provider does (ES256, a key id, iss/sub/exp and org claims) and serves its
// JWKS over HTTP, so the authorizer verifies local users through its normal JWKS path. The
// local stack and the tests use it; nothing deployed does.
package localidp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	svix "github.com/svix/svix-webhooks/go"
)

// Issuer signs JWTs with its current key and publishes the public half of every key it has
// used, as an identity provider does across a key rotation.
type Issuer struct {
	URL string // the iss claim
	// Claims is the session-token shape Mint writes: "v1" (org_id, org_role "org:admin") or
	// "v2" (o.id, o.rol "admin"), as Clerk's two versions do. Default "v2".
	Claims string
	// AuthorizedParty, when set, is the azp claim Mint writes: the origin of the page the
	// session belongs to.
	AuthorizedParty string

	mu      sync.Mutex
	key     jwk.Key // current private key
	public  jwk.Set
	counter int
}

// New returns an issuer named url with a fresh signing key.
func New(url string) (*Issuer, error) {
	i := &Issuer{URL: url, public: jwk.NewSet()}
	if err := i.Rotate(); err != nil {
		return nil, err
	}
	return i, nil
}

// Rotate starts signing with a new key whose id the JWKS did not list before; the old public
// key stays published.
func (i *Issuer) Rotate() error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.counter++
	kid := "local-" + strconv.Itoa(i.counter)
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		return err
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.ES256()); err != nil {
		return err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return err
	}
	if err := i.public.AddKey(pub); err != nil {
		return err
	}
	i.key = key
	return nil
}

// Retire stops publishing the public key kid, as a provider does once no token it signed
// with that key is valid any more (or once the key is compromised).
func (i *Issuer) Retire(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if k, ok := i.public.LookupKeyID(kid); ok {
		_ = i.public.RemoveKey(k)
	}
}

// KeyID returns the id of the current signing key.
func (i *Issuer) KeyID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	kid, _ := i.key.KeyID()
	return kid
}

// Sign signs arbitrary claims with the current key, for tests that need malformed or
// unusual tokens.
func (i *Issuer) Sign(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	key := i.key
	i.mu.Unlock()
	kid, _ := key.KeyID()
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
		return "", err
	}
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return string(out), nil
}

// Mint returns a user JWT for user in org with role ("admin" or "member"), valid for ttl from
// now, in the issuer's claim shape.
func (i *Issuer) Mint(user, org, role string, now time.Time, ttl time.Duration) (string, error) {
	claims := map[string]any{
		"iss": i.URL, "sub": user, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
	if i.AuthorizedParty != "" {
		claims["azp"] = i.AuthorizedParty
	}
	if i.Claims == "v1" {
		claims["org_id"], claims["org_role"] = org, "org:"+role
	} else {
		claims["v"], claims["o"] = 2, map[string]any{"id": org, "rol": role}
	}
	return i.Sign(claims)
}

// OrgDeleted is the provider's organization.deleted event for org, as it sends it at now.
func OrgDeleted(org string, now time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"object": "event", "type": "organization.deleted", "instance_id": "ins_local", "timestamp": now.UnixMilli(),
		"data": map[string]any{"object": "organization", "id": org, "deleted": true},
	})
	return b
}

// SignWebhook signs a delivery of body as the provider's webhooks are signed through Svix with
// the endpoint's signing secret (whsec_…) at now, and returns the delivery's headers:
// Content-Type, svix-id, svix-timestamp and svix-signature.
func SignWebhook(body []byte, secret string, now time.Time) (http.Header, error) {
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("signing secret: %w", err)
	}
	id := "msg_" + rand.Text()
	sig, err := wh.Sign(id, now, body)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("svix-id", id)
	h.Set("svix-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("svix-signature", sig)
	return h, nil
}

// ServeHTTP serves the JWKS (the public keys) as an identity provider's jwks_uri does.
func (i *Issuer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	i.mu.Lock()
	b, err := json.Marshal(i.public)
	i.mu.Unlock()
	if err != nil {
		http.Error(w, "jwks unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(b)
}
