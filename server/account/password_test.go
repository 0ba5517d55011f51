package account

import (
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	p := HashParams{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	h, err := HashPassword("correct horse battery", p)
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("%q %v", h, err)
	}
	for _, tt := range []struct {
		hash, pw string
		want     bool
	}{
		{h, "correct horse battery", true},
		{h, "correct horse batterY", false},
		{"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5", "x", false},
		{"$2a$10$bcrypt", "x", false},
		{"", "", false},
	} {
		if got := VerifyPassword(tt.hash, tt.pw); got != tt.want {
			t.Errorf("VerifyPassword(%q, %q) = %v", tt.hash, tt.pw, got)
		}
	}
	for pw, ok := range map[string]bool{"123456789": false, "1234567890": true, strings.Repeat("x", 256): true, strings.Repeat("x", 257): false} {
		if (CheckPasswordPolicy(pw) == nil) != ok {
			t.Errorf("policy(%d chars) ok=%v", len(pw), !ok)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{" Ada@Example.COM ": "ada@example.com", "a@b": "", "Ada <a@b.c>": "", "": "", "a@b.co": "a@b.co"} {
		got, err := NormalizeEmail(in)
		if (err == nil) != (want != "") || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v", in, got, err)
		}
	}
}
