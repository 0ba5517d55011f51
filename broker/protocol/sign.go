package protocol

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// OTASigningPrefix is the first line of OTASigningString; the -v1 names the layout, so a
// signature made for another layout can never verify.
const OTASigningPrefix = "espadmin-ota-v1"

// OTASigningString returns the exact bytes an update's Ed25519 signature covers:
//
//	espadmin-ota-v1\n{version}\n{size}\n{sha256}\n{url}\n{url_expires_at}
//
// with size and url_expires_at in decimal without sign or leading zeros, sha256 in lower-case
// hex, and no trailing newline. No field can contain a newline (they are validated), so the
// layout is unambiguous and the firmware rebuilds it byte for byte with one snprintf.
func OTASigningString(p UpdateParams) []byte {
	var b strings.Builder
	b.Grow(len(OTASigningPrefix) + len(p.Version) + len(p.SHA256) + len(p.URL) + 48)
	b.WriteString(OTASigningPrefix)
	b.WriteByte('\n')
	b.WriteString(p.Version)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(p.Size, 10))
	b.WriteByte('\n')
	b.WriteString(p.SHA256)
	b.WriteByte('\n')
	b.WriteString(p.URL)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(p.URLExpiresAt, 10))
	return []byte(b.String())
}

// SignUpdate returns p with Signature set by the project's private key.
func SignUpdate(key ed25519.PrivateKey, p UpdateParams) UpdateParams {
	p.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, OTASigningString(p)))
	return p
}

// ErrBadSignature is returned by VerifyUpdate; an OTA failure with reason bad_signature.
var ErrBadSignature = errors.New("protocol: update signature does not verify")

// VerifyUpdate checks p's signature with the project's public key, as the firmware does
// before downloading anything. A missing signature fails too: only a device provisioned
// without a public key (signing turned off) may skip this check.
func VerifyUpdate(key ed25519.PublicKey, p UpdateParams) error {
	sig, err := base64.StdEncoding.DecodeString(p.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize || len(key) != ed25519.PublicKeySize ||
		!ed25519.Verify(key, OTASigningString(p), sig) {
		return ErrBadSignature
	}
	return nil
}
