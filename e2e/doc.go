// Package e2e holds Slipway's end-to-end tests: they build the real slipway
// binary once (with -race when the tests run with it), start `slipway serve`
// on loopback with its own data directory, and drive it with the real git
// and ssh clients, the way a user would. Nothing here is mocked. Tests run
// in parallel, each with its own daemons, ports and folders; every daemon
// dies with its test.
package e2e
