// Package configs holds Slipway's server configuration: the TOML schema, its
// defaults, its validation and the two files users meet first, the commented
// example (example.toml, the reference) and the embedded default that
// `slipway serve` runs on when no --config is given (default.toml).
//
// A Config is loaded once, validated as a whole, and then only read: every
// problem is reported with the line of the file it comes from, so that
// `slipway config check` can print all of them at once. After validation a
// Config answers the questions the rest of the daemon asks of it: which user a
// public key belongs to (UserForKey) and what that user may do with a
// repository (Access).
package configs
