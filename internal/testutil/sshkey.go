package testutil

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Key is a fresh SSH public key of a test user.
type Key struct {
	Line        string // as an authorized_keys line has it, without a comment
	Fingerprint string // SHA256:…, as the SSH server reports it
}

// NewKey makes a new ed25519 Key.
func NewKey(t testing.TB) Key {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Line: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))), Fingerprint: ssh.FingerprintSHA256(k)}
}
