package alerts

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	must(t, err)
	return b
}

// decryptPush is the user agent's side of RFC 8291 (Message Encryption for Web Push) over
// the aes128gcm content coding of RFC 8188, written from the RFCs with the standard library
// only, so the server's encryption is checked by an independent implementation.
func decryptPush(uaPrivate *ecdh.PrivateKey, authSecret, body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short body")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen || rs < 18 {
		return nil, errors.New("bad header")
	}
	asPublicBytes, ciphertext := body[21:21+idlen], body[21+idlen:]
	asPublic, err := ecdh.P256().NewPublicKey(asPublicBytes)
	if err != nil {
		return nil, err
	}
	ecdhSecret, err := uaPrivate.ECDH(asPublic)
	if err != nil {
		return nil, err
	}
	keyInfo := append(append([]byte("WebPush: info\x00"), uaPrivate.PublicKey().Bytes()...), asPublicBytes...)
	ikm, err := hkdf.Key(sha256.New, ecdhSecret, authSecret, string(keyInfo), 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) > int(rs) {
		return nil, errors.New("more than one record")
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, err
	}
	// The last record ends with the delimiter 0x02 followed by zero or more zero bytes.
	end := bytes.LastIndexFunc(plain, func(r rune) bool { return r != 0 })
	if end < 0 || plain[end] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return plain[:end], nil
}

// The RFC 8291 Appendix A example decrypts with the user agent's keys.
func TestRFC8291TestVector(t *testing.T) {
	uaPrivate, err := ecdh.P256().NewPrivateKey(b64(t, "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
	must(t, err)
	if got := base64.RawURLEncoding.EncodeToString(uaPrivate.PublicKey().Bytes()); got != "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4" {
		t.Fatalf("user agent public key = %s", got)
	}
	body := b64(t, "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
	plain, err := decryptPush(uaPrivate, b64(t, "BTBZMqHH6r4Tts7J_aSIgg"), body)
	must(t, err)
	if string(plain) != "When I grow up, I want to be a watermelon" {
		t.Fatalf("plaintext = %q", plain)
	}
}

// A push channel's alert reaches a local push endpoint encrypted for the subscription and
// signed with the server's VAPID key; the endpoint decrypts it with the subscription's keys.
// A subscription the push service reports gone is deleted.
func TestPushChannelDeliversEncrypted(t *testing.T) {
	uaPrivate, err := ecdh.P256().GenerateKey(rand.Reader)
	must(t, err)
	authSecret := make([]byte, 16)
	_, _ = rand.Read(authSecret)
	type push struct {
		plain []byte
		err   error
		auth  string
	}
	got := make(chan push, 4)
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone" {
			w.WriteHeader(http.StatusGone)
			return
		}
		body, _ := io.ReadAll(r.Body)
		p := push{auth: r.Header.Get("Authorization")}
		if r.Header.Get("Content-Encoding") != "aes128gcm" {
			p.err = errors.New("Content-Encoding " + r.Header.Get("Content-Encoding"))
		} else {
			p.plain, p.err = decryptPush(uaPrivate, authSecret, body)
		}
		got <- p
		w.WriteHeader(http.StatusCreated)
	}))
	defer endpoint.Close()

	k := testKeyring(t)
	st := openStore(t, filepath.Join(t.TempDir(), "push.db"))
	defer st.Close()
	ctx := context.Background()
	tn := store.Tenant{Slug: "acme", Name: "Acme"}
	must(t, st.CreateTenant(ctx, &tn))
	sub := store.PushSubscription{TenantID: tn.ID, UserID: "u1", Endpoint: endpoint.URL + "/push/1",
		P256dh: base64.RawURLEncoding.EncodeToString(uaPrivate.PublicKey().Bytes()), Auth: base64.RawURLEncoding.EncodeToString(authSecret)}
	must(t, ValidateSubscription(&sub, true))
	must(t, st.CreatePushSubscription(ctx, &sub))
	gone := sub
	gone.ID, gone.Endpoint = "", endpoint.URL+"/gone"
	must(t, st.CreatePushSubscription(ctx, &gone))
	ch := store.AlertChannel{TenantID: tn.ID, Name: "browsers", Kind: ChannelPush, Options: "{}", Enabled: true}
	must(t, st.CreateAlertChannel(ctx, &ch))
	d := queue(t, st, ch, "Offline: 2 devices offline")

	runDispatcher(t, DispatchOptions{Store: st, Keyring: k, AllowPrivate: true, PollInterval: 10 * time.Millisecond,
		Push: &PushSender{Store: st, Keyring: k, Client: NewHTTPClient(true, 5*time.Second), Subscriber: "https://fleet.example.com"}})
	var p push
	select {
	case p = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the push endpoint received nothing")
	}
	must(t, p.err)
	var n PushNotification
	must(t, json.Unmarshal(p.plain, &n))
	if n.Title != "ESP Admin: Offline" || !strings.HasPrefix(n.Body, "Offline: 2 devices offline\n• dev-1") || n.URL != "https://fleet.example.com/t/acme/alerts" {
		t.Errorf("notification = %+v", n)
	}
	vapid, err := LoadVAPID(ctx, st, k)
	must(t, err)
	if !strings.HasPrefix(p.auth, "vapid t=") || !strings.HasSuffix(p.auth, ", k="+vapid.Public) {
		t.Errorf("Authorization = %q, want a VAPID token with the stored public key", p.auth)
	}
	poll.Until(t, 30*time.Second, "delivered and the gone subscription deleted", func() bool {
		del, err := st.AlertDelivery(ctx, tn.ID, d.ID)
		subs, _ := st.ListPushSubscriptions(ctx, tn.ID, store.ListOptions{})
		return err == nil && del.State == store.DeliveryDelivered && len(subs.Items) == 1 && subs.Items[0].ID == sub.ID
	})
}

// The VAPID key pair is made once and sealed; later loads (other replicas) get the same.
func TestVAPIDKeyIsMadeOnceAndSealed(t *testing.T) {
	k := testKeyring(t)
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"))
	defer st.Close()
	ctx := context.Background()
	first, err := LoadVAPID(ctx, st, k)
	must(t, err)
	again, err := LoadVAPID(ctx, st, k)
	must(t, err)
	if first != again || len(b64(t, first.Public)) != 65 {
		t.Fatalf("VAPID keys differ or are malformed: %+v %+v", first, again)
	}
	s, err := st.ServerSecret(ctx, "vapid")
	must(t, err)
	if bytes.Contains(s.Sealed, []byte(first.Private)) {
		t.Error("the VAPID private key is stored in clear")
	}
}

func TestValidateSubscription(t *testing.T) {
	key := base64.RawURLEncoding.EncodeToString(append([]byte{4}, make([]byte, 64)...))
	auth := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	for _, c := range []struct {
		name  string
		sub   store.PushSubscription
		field string
	}{
		{"valid", store.PushSubscription{Endpoint: "https://fcm.googleapis.com/fcm/send/x", P256dh: key, Auth: auth}, ""},
		{"http", store.PushSubscription{Endpoint: "http://push.example.com/x", P256dh: key, Auth: auth}, "endpoint"},
		{"long", store.PushSubscription{Endpoint: "https://p.example.com/" + strings.Repeat("x", 600), P256dh: key, Auth: auth}, "endpoint"},
		{"short key", store.PushSubscription{Endpoint: "https://p.example.com/x", P256dh: auth, Auth: auth}, "keys.p256dh"},
		{"bad auth", store.PushSubscription{Endpoint: "https://p.example.com/x", P256dh: key, Auth: "!!"}, "keys.auth"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateSubscription(&c.sub, false)
			var inv *store.InvalidError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("ValidateSubscription = %v", err)
			case c.field != "" && (!errors.As(err, &inv) || inv.Fields[c.field] == ""):
				t.Fatalf("ValidateSubscription = %v, want an invalid %s", err, c.field)
			}
		})
	}
}
