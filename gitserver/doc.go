// Package gitserver is Slipway's SSH front door: it authenticates clients by
// public key, maps the repository path a git client sends to a bare repository
// under the data directory, checks the user's rights on it, creates it on an
// admin's first push, and runs the real `git upload-pack`, `git receive-pack`
// or `git upload-archive` with its standard streams wired to the SSH channel
// and git's exit code sent back as the exit status. It also answers the
// built-in commands (help, whoami, repos) and the commands other packages
// register through Options.Commands (builds, log, ...).
//
// Identity comes only from the key whose signature was verified: the user is
// resolved in x/crypto's VerifiedPublicKeyCallback and carried in the
// connection's ssh.Permissions, never from values set while a client was
// merely offering keys (see CVE-2024-45337). Git runs with a daemon-owned
// core.hooksPath, so every push passes through Slipway's hooks; the hooks learn
// who pushed from a per-session token obtained through the PushTokens
// interface. Everything else the package needs from the rest of the daemon
// comes through small interfaces declared here, so cmd/slipway wires the real
// implementations and tests use maps; the commands beyond help, whoami and
// git's (repos, builds, ...) are given to it (Options.Commands) by package
// console.
//
// Connections that have not authenticated yet are startups (see startups):
// they have a budget of their own, apart from the session slots of
// authenticated users, with sshd's random early drop, a cap per source and
// a deadline for the whole time before authentication; silent ones give
// way to newcomers. Those refused or closed before authentication are
// logged as one summary line per interval (see connLog).
package gitserver
