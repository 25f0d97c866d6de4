// Package console is the text interface of Slipway over SSH: the commands
// `repos`, `builds`, `log`, `cancel`, `retry`, `deploys`, `releases`,
// `schedules` and `run` that gitserver runs for an authenticated user.
//
// Every command asks package views, the read model the JSON API serves
// too, which checks the caller's rights on the repository it touches
// (read to look, write to act) with the same answer for a missing and a
// hidden object. The console prints its documents as plain text for
// people (made safe for a terminal) and, with --json, as they are.
package console
