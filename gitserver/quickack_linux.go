package gitserver

import (
	"net"
	"syscall"
)

// quickAcker returns a function that asks the kernel to acknowledge the
// next received segments at once. OpenSSH clients leave Nagle's algorithm on
// for non-interactive sessions, so each of their two-write steps (KEXINIT
// then KEX_ECDH_INIT, NEWKEYS then SERVICE_REQUEST, git's commands then its
// pack) waits for an ACK of the first write; Linux delays that ACK by up to
// 40ms when the server has nothing to send. Quick-ack mode is not sticky, so
// it is renewed before every read; it costs one setsockopt.
func quickAcker(c net.Conn) func() {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return func() {}
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return func() {}
	}
	return func() {
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
}
