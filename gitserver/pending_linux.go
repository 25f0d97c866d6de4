package gitserver

import (
	"net"
	"syscall"
)

// pendingInput reports whether the client has sent bytes that are waiting
// in c's receive buffer, unread. It peeks without blocking, through
// Control rather than RawConn.Read, which would wait for the read lock the
// connection's own goroutine holds while it waits for input.
func pendingInput(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	pending := false
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		pending = err == nil && n > 0
	})
	return pending
}
