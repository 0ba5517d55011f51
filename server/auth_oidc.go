package server

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

// goth's OpenID Connect provider checks the ID token's issuer, audience and expiry but not
// its signature. The token arrives straight from the token endpoint over TLS, which OpenID
// Connect Core 1.0 §3.1.3.7 accepts, but checking the RS256 signature against the provider's
// JWKS costs little and also covers plain-HTTP issuers. oidcVerifier does that.
type oidcVerifier struct {
	client   *http.Client
	cfg      oidcDiscovery
	clientID string

	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	fetched time.Time
}

type oidcDiscovery struct {
	Issuer           string `json:"issuer"`
	AuthEndpoint     string `json:"authorization_endpoint"`
	TokenEndpoint    string `json:"token_endpoint"`
	UserInfoEndpoint string `json:"userinfo_endpoint"`
	JWKSURI          string `json:"jwks_uri"`
}

// jwksRefresh bounds how often an unknown key ID makes the verifier fetch the JWKS again
// (providers rotate keys).
const jwksRefresh = time.Minute

func getJSON(client *http.Client, u string, v any) error {
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

func newOIDCVerifier(client *http.Client, discoveryURL, clientID string) (*oidcVerifier, error) {
	v := &oidcVerifier{client: client, clientID: clientID}
	if err := getJSON(client, discoveryURL, &v.cfg); err != nil {
		return nil, fmt.Errorf("oidc discovery: %w", err)
	}
	if v.cfg.Issuer == "" || v.cfg.AuthEndpoint == "" || v.cfg.TokenEndpoint == "" || v.cfg.JWKSURI == "" {
		return nil, errors.New("oidc discovery: document lacks issuer, authorization_endpoint, token_endpoint or jwks_uri")
	}
	return v, nil
}

func (v *oidcVerifier) key(kid string) (*rsa.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	if v.keys != nil && time.Since(v.fetched) < jwksRefresh {
		return nil, fmt.Errorf("unknown key ID %q", kid)
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := getJSON(v.client, v.cfg.JWKSURI, &set); err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) > 4 {
			continue
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	v.keys, v.fetched = keys, time.Now()
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown key ID %q", kid)
}

// verify checks the ID token's RS256 signature, issuer, audience and expiry.
func (v *oidcVerifier) verify(idToken string, now time.Time) error {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return errors.New("ID token is not a JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return errors.New("ID token header is not base64url")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return errors.New("ID token header is not JSON")
	}
	if hdr.Alg != "RS256" {
		return fmt.Errorf("ID token algorithm %q is not RS256", hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return errors.New("ID token signature is not base64url")
	}
	key, err := v.key(hdr.Kid)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("ID token signature does not verify")
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return errors.New("ID token payload is not base64url")
	}
	var claims struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
		Exp int64           `json:"exp"`
	}
	if err := json.Unmarshal(pb, &claims); err != nil {
		return errors.New("ID token payload is not JSON")
	}
	if claims.Iss != v.cfg.Issuer {
		return errors.New("ID token issuer does not match discovery")
	}
	var auds []string
	var one string
	if json.Unmarshal(claims.Aud, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(claims.Aud, &auds) != nil {
		return errors.New("ID token audience unreadable")
	}
	found := false
	for _, a := range auds {
		found = found || a == v.clientID
	}
	if !found {
		return errors.New("ID token audience does not include this client")
	}
	if now.Unix() >= claims.Exp+10 {
		return errors.New("ID token expired")
	}
	return nil
}
