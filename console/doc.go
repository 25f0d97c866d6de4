// Package console is the text interface of Slipway's CI/CD side over SSH:
// the commands `builds`, `log`, `cancel`, `retry`, `deploys`, `releases`,
// `schedules` and `run` that gitserver runs for an authenticated user.
//
// Every command checks the caller's rights on the repository it touches
// (read to look, write to act) with the same answer for a missing and a
// hidden object, prints plain text for people and, with --json, one JSON
// document for scripts.
package console
