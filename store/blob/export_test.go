package blob

import "time"

// SignedURLExpiringAt signs key with an arbitrary expiry, including one in the past,
// which the public SignedURL refuses to produce.
func (l *Local) SignedURLExpiringAt(key string, expires time.Time) string {
	return l.signedURL(key, expires.Unix())
}

// SetClock replaces the clock used for signing and verifying, so tests can move past an
// expiry without waiting for it.
func (l *Local) SetClock(now func() time.Time) { l.now = now }
