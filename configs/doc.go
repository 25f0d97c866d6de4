// Package configs holds Slipway's server configuration: the TOML schema, its
// defaults, its validation and the two files users meet first, the commented
// example (example.toml, the reference) and the embedded default that
// `slipway serve` runs on when no --config is given (default.toml).
//
// A Config is loaded once by a Loader, validated as a whole, and then only
// read: every problem is reported as FILE:LINE: problem, so that `slipway
// config check` can print all of them at once. The embedded default is an
// ordinary file: what it takes from the machine (the running user's login
// name and ~/.ssh/*.pub, $SLIPWAY_ADMIN_KEYS) it asks for with settings any
// file may use (name = "{login}", key_files, keys_env), read through the
// Loader. After validation a Config answers the questions the rest of the
// daemon asks of it: which user a public key belongs to and whether it may be
// used from this address now (Authorize, honouring the key's from= and
// expiry-time= options), and what that user may do with a repository
// (Access).
package configs
