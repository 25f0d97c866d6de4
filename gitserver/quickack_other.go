//go:build !linux

package gitserver

import "net"

// quickAcker is a no-op where TCP_QUICKACK does not exist.
func quickAcker(net.Conn) func() { return func() {} }
