// Package configrepo is the configuration as a repository (config_repo =
// true): the repository slipway-config holds the daemon's configuration
// file as slipway.toml on branch main, so that its history, review and
// rollback are git's.
//
// A push to main is checked before any ref moves (Repo.Check, from the
// hooks' pre-receive): the pushed file is read from the push's quarantine
// and validated whole by the daemon's own loader, and a push that would
// remove the file, lock every admin out or take the pusher's own admin
// access away is refused with its reason. Once git has moved main,
// Repo.Apply (post-receive) writes the file to the configuration's path on
// disk atomically and has the daemon reload it; the pusher reads the
// reload's result. Other branches and tags are free: review branches put
// nothing in force.
//
// The file on disk stays the source at start, so that a daemon that will
// not start can always be fixed by editing it. At start and after every
// reload, Repo.Sync commits the file the daemon runs on to main when main
// does not hold exactly it, with git's plumbing and the repository's
// hooks active, so that the commit is recorded like any other update on
// the server's disk and the repository always shows the configuration in
// force.
//
// The hooks declare what they need of it (hooks.ConfigRepo); cmd/slipway
// builds a Repo when config_repo is on and hands it the daemon's loader
// and reload.
package configrepo
