package gitserver

import gossh "golang.org/x/crypto/ssh"

// HostPublicKey is the server's host public key, for the tests' clients to
// pin (the daemon shows only its fingerprint).
func (s *Server) HostPublicKey() gossh.PublicKey { return s.signer.PublicKey() }
