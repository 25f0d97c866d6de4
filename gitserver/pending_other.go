//go:build !linux

package gitserver

import "net"

// pendingInput is not known here: only what the connection's goroutine
// has read counts as spoken.
func pendingInput(net.Conn) bool { return false }
