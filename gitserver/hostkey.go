package gitserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"
)

// loadOrCreateHostKey returns the host key at path, generating an ed25519 key
// there if no file exists. An existing file that cannot be read or parsed is
// an error: regenerating it would silently change the server's identity and
// teach every client to ignore host key warnings.
func loadOrCreateHostKey(path string, log *slog.Logger) (gossh.Signer, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		signer, err := gossh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("parse host key %q (fix or remove it; it is never regenerated over an existing file): %w", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("host key is readable by others", "path", path, "mode", fi.Mode().Perm().String())
		}
		return signer, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read host key: %w", err)
	}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "slipway host key")
	if err != nil {
		return nil, fmt.Errorf("encode host key: %w", err)
	}
	if err := writeNewFile(path, pem.EncodeToMemory(block)); err != nil {
		return nil, fmt.Errorf("write host key: %w", err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("host key signer: %w", err)
	}
	log.Info("generated ssh host key", "path", path, "fingerprint", gossh.FingerprintSHA256(signer.PublicKey()))
	return signer, nil
}

// writeNewFile writes data to path with mode 0600 so that path either does not
// exist or holds all of data, and never replaces a file that appeared in the
// meantime (two daemons starting at once keep the first key).
func writeNewFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".hostkey-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link, unlike rename, fails when path exists.
	return os.Link(tmp.Name(), path)
}
