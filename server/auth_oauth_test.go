package server

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

// testIDP is a minimal OpenID Connect provider: discovery, JWKS, an authorize endpoint that
// signs in whoever the test chose, and a token endpoint returning an RS256 ID token.
type testIDP struct {
	srv      *httptest.Server
	key      *rsa.PrivateKey
	clientID string
	secret   string

	mu    sync.Mutex
	next  map[string]any // claims of whoever signs in next
	codes map[string]map[string]any
	// badSignature makes the token endpoint sign with another key.
	badSignature bool
}

func newTestIDP(t *testing.T) *testIDP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &testIDP{key: key, clientID: "espadmin-test", secret: "idp-secret", codes: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize",
			"token_endpoint": p.srv.URL + "/token", "jwks_uri": p.srv.URL + "/jwks",
			"response_types_supported": []string{"code"}, "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"keys": []any{map[string]any{
			"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != p.clientID || q.Get("response_type") != "code" {
			http.Error(w, "bad request", 400)
			return
		}
		p.mu.Lock()
		code := b64(randBytes(16))
		p.codes[code] = p.next
		p.mu.Unlock()
		back, _ := url.Parse(q.Get("redirect_uri"))
		v := back.Query()
		v.Set("code", code)
		v.Set("state", q.Get("state"))
		back.RawQuery = v.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, sec, ok := r.BasicAuth()
		if !ok {
			id, sec = r.FormValue("client_id"), r.FormValue("client_secret")
		}
		p.mu.Lock()
		claims, found := p.codes[r.FormValue("code")]
		delete(p.codes, r.FormValue("code"))
		bad := p.badSignature
		p.mu.Unlock()
		if id != p.clientID || sec != p.secret || !found {
			w.WriteHeader(400)
			writeJSON(w, map[string]any{"error": "invalid_grant"})
			return
		}
		all := map[string]any{"iss": p.srv.URL, "aud": p.clientID, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		for k, v := range claims {
			all[k] = v
		}
		signer := p.key
		if bad {
			signer, _ = rsa.GenerateKey(rand.Reader, 2048)
		}
		writeJSON(w, map[string]any{"access_token": "at-" + b64(randBytes(8)), "token_type": "Bearer",
			"expires_in": 3600, "id_token": signJWT(t, signer, all)})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testIDP) signInAs(claims map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = claims
}

func (p *testIDP) config() OAuthConfig {
	return OAuthConfig{OIDC: OIDCProvider{
		DiscoveryURL: p.srv.URL + "/.well-known/openid-configuration",
		ClientID:     p.clientID, ClientSecret: p.secret, Name: "Test SSO",
	}}
}

func signJWT(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	hdr, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	signing := b64(hdr) + "." + b64(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func TestOIDCLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		open      bool
		claims    map[string]any
		wantSt    int
		wantCode  string
		wantEmail string
		linksAda  bool // logs into the existing ada account
	}{
		{"verified email links to the existing account", false,
			map[string]any{"sub": "s-1", "email": "Ada@Example.com", "email_verified": true, "name": "Ada"}, 200, "", "ada@example.com", true},
		{"unverified email of an existing account is refused", true,
			map[string]any{"sub": "s-2", "email": "ada@example.com", "email_verified": false}, 409, "email_unverified", "", false},
		{"unverified new email creates a separate account", true,
			map[string]any{"sub": "s-3", "email": "grace@example.com", "email_verified": false, "name": "Grace"}, 200, "", "grace@example.com", false},
		{"new user refused when sign-up is closed", false,
			map[string]any{"sub": "s-4", "email": "grace@example.com", "email_verified": true}, 403, "signup_closed", "", false},
		{"no email", true, map[string]any{"sub": "s-5"}, 400, "no_email", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := newTestIDP(t)
			opts := []harnessOption{withOAuth(idp.config())}
			if tt.open {
				opts = append(opts, withSignupOpen())
			}
			h := newHarness(t, opts...)
			ada := h.createUser(t, "ada@example.com", "acme", store.RoleOwner)
			idp.signInAs(tt.claims)

			c := h.newClient()
			st, resp := c.do("GET", "/api/v1/auth/oauth/oidc", nil) // follows the redirects
			if st != tt.wantSt {
				t.Fatalf("status %d, want %d: %v", st, tt.wantSt, resp)
			}
			if tt.wantCode != "" {
				if code := errCode(t, resp); code != tt.wantCode {
					t.Errorf("code %q, want %q", code, tt.wantCode)
				}
				if st, _ := c.do("GET", "/api/v1/auth/me", nil); st != 401 {
					t.Errorf("logged in after a refused OAuth login: %d", st)
				}
				if n, _ := h.st.CountUsers(t.Context()); n != 1 {
					t.Errorf("%d users after a refused login", n)
				}
				return
			}
			st, me := c.do("GET", "/api/v1/auth/me", nil)
			if st != 200 || me["user"].(map[string]any)["email"] != tt.wantEmail {
				t.Fatalf("me: %d %v", st, me)
			}
			isAda := me["user"].(map[string]any)["id"] == ada.ID
			if isAda != tt.linksAda {
				t.Errorf("logged into ada's account: %v, want %v", isAda, tt.linksAda)
			}
			// A second login by the same subject finds the linked account directly.
			c2 := h.newClient()
			if st, again := c2.do("GET", "/api/v1/auth/oauth/oidc", nil); st != 200 || again["user"].(map[string]any)["id"] != me["user"].(map[string]any)["id"] {
				t.Errorf("second login: %d %v", st, again)
			}
			// The session made on server 1 works on server 2.
			h2 := h.secondServer()
			if st, _ := c.on(h2).do("GET", "/api/v1/auth/me", nil); st != 200 {
				t.Errorf("session on second server: %d", st)
			}
		})
	}
}

func TestOIDCRefusals(t *testing.T) {
	t.Parallel()
	idp := newTestIDP(t)
	h := newHarness(t, withOAuth(idp.config()), withSignupOpen())
	idp.signInAs(map[string]any{"sub": "s-1", "email": "eve@example.com", "email_verified": true})

	if st, resp := h.newClient().do("GET", "/api/v1/auth/providers", nil); st != 200 ||
		len(resp["providers"].([]any)) != 1 || resp["providers"].([]any)[0].(map[string]any)["name"] != "Test SSO" {
		t.Errorf("providers: %d %v", st, resp)
	}
	if st, resp := h.newClient().do("GET", "/api/v1/auth/oauth/github", nil); st != 404 || errCode(t, resp) != "not_found" {
		t.Errorf("disabled provider: %d %v", st, resp)
	}
	// A callback without the state cookie (login not started by this browser) is refused.
	if st, resp := h.newClient().do("GET", "/api/v1/auth/oauth/oidc/callback?code=x&state=y", nil); st != 400 || errCode(t, resp) != "oauth_state" {
		t.Errorf("callback without state: %d %v", st, resp)
	}
	// A forged state cookie is refused.
	c := h.newClient()
	c.http.Jar.SetCookies(mustURL(t, h.url+oauthPath), []*http.Cookie{{Name: oauthCookie, Value: "eyJwIjoib2lkYyJ9.Zm9yZ2Vk", Path: oauthPath}})
	if st, resp := c.do("GET", "/api/v1/auth/oauth/oidc/callback?code=x&state=y", nil); st != 400 || errCode(t, resp) != "oauth_state" {
		t.Errorf("forged state: %d %v", st, resp)
	}
	// An ID token signed with another key is refused.
	idp.mu.Lock()
	idp.badSignature = true
	idp.mu.Unlock()
	if st, resp := h.newClient().do("GET", "/api/v1/auth/oauth/oidc", nil); st != 401 || errCode(t, resp) != "oauth_failed" {
		t.Errorf("bad signature: %d %v", st, resp)
	}
	if n, _ := h.st.CountUsers(t.Context()); n != 0 {
		t.Errorf("%d users after refused logins", n)
	}
}
