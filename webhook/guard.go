package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// ErrRefused is the guard's refusal of an address: a delivery refused so
// is recorded refused and not retried.
var ErrRefused = errors.New("address refused")

// Address ranges a hook may not reach without allow_private, beyond what
// netip.Addr's predicates tell.
var refusedPrefixes = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a 'this network' address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address (100.64.0.0/10)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address (192.0.0.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address (198.18.0.0/15)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address (240.0.0.0/4)"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible IPv6 address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only IPv6 address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation IPv6 address"},
}

// CheckAddr returns why a hook without allow_private may not reach ip,
// or nil. IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) are judged as the
// IPv4 address they carry, and so are NAT64 (64:ff9b::/96) and 6to4
// (2002::/16) addresses.
func CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(ip):
			if err := CheckAddr(netip.AddrFrom4([4]byte(b[12:16]))); err != nil {
				return fmt.Errorf("%s carries an IPv4 address: %w", ip, err)
			}
		case netip.MustParsePrefix("2002::/16").Contains(ip):
			if err := CheckAddr(netip.AddrFrom4([4]byte(b[2:6]))); err != nil {
				return fmt.Errorf("%s carries an IPv4 address: %w", ip, err)
			}
		}
	}
	what := ""
	switch {
	case !ip.IsValid():
		what = "not an address"
	case ip.IsUnspecified():
		what = "an unspecified address"
	case ip.IsLoopback():
		what = "a loopback address"
	case ip.IsLinkLocalUnicast():
		what = "a link-local address"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		what = "a multicast address"
	case ip.IsPrivate():
		what = "a private address"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		what = "the broadcast address"
	}
	if what == "" {
		for _, r := range refusedPrefixes {
			if r.p.Contains(ip) {
				what = r.what
				break
			}
		}
	}
	if what == "" {
		return nil
	}
	return fmt.Errorf("%w: %s is %s (allow_private = true lets a hook reach it)", ErrRefused, ip, what)
}

// control is a net.Dialer's Control: it runs after the name is resolved,
// on the very address about to be connected, so a name that resolves to
// a public address when checked and to an internal one when dialled
// (DNS rebinding) is still refused.
func control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot read the address %q (%s)", ErrRefused, address, network)
	}
	return CheckAddr(ap.Addr())
}

// Dialer returns the dialer of deliveries: guarded unless allowPrivate.
func Dialer(allowPrivate bool, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = control
	}
	return d
}
