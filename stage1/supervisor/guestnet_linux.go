package supervisor

import (
	"fmt"
	"net"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// guestNetwork brings the guest's loopback up and, when the pod has a
// network, configures the interface with the host's MAC: its address and
// the default route.
func guestNetwork(n *GuestNetwork) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("guest network: %w", err)
	}
	defer unix.Close(s)
	if err := ifUp(s, "lo"); err != nil {
		return err
	}
	if n == nil {
		return nil
	}
	mac, err := net.ParseMAC(n.MAC)
	if err != nil {
		return fmt.Errorf("guest network: MAC %q: %w", n.MAC, errdefs.ErrInvalid)
	}
	ip, ipn, err := net.ParseCIDR(n.Address)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("guest network: address %q: %w", n.Address, errdefs.ErrInvalid)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("guest network: %w", err)
	}
	name := ""
	for _, i := range ifs {
		if strings.EqualFold(i.HardwareAddr.String(), mac.String()) {
			name = i.Name
		}
	}
	if name == "" {
		return fmt.Errorf("guest network: no interface with MAC %s: %w", n.MAC, errdefs.ErrNotFound)
	}
	for _, set := range []struct {
		req  uint
		addr net.IP
	}{{unix.SIOCSIFADDR, ip}, {unix.SIOCSIFNETMASK, net.IP(ipn.Mask)}} {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(set.addr.To4()); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(s, set.req, ifr); err != nil {
			return fmt.Errorf("guest network: configuring %s: %w", name, err)
		}
	}
	if err := ifUp(s, name); err != nil {
		return err
	}
	if n.Gateway == "" {
		return nil
	}
	gw := net.ParseIP(n.Gateway).To4()
	if gw == nil {
		return fmt.Errorf("guest network: gateway %q: %w", n.Gateway, errdefs.ErrInvalid)
	}
	rt := rtentry{Flags: unix.RTF_UP | unix.RTF_GATEWAY}
	rt.Dst = inet4(net.IPv4zero)
	rt.Genmask = inet4(net.IPv4zero)
	rt.Gateway = inet4(gw)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s), unix.SIOCADDRT, uintptr(unsafe.Pointer(&rt))); errno != 0 {
		return fmt.Errorf("guest network: default route via %s: %w", gw, errno)
	}
	// A datagram to the gateway's discard port resolves its address now,
	// and makes it learn the guest's: the apps' first connections (to the
	// metadata service, say) do not wait for either.
	if c, err := net.Dial("udp4", net.JoinHostPort(gw.String(), "9")); err == nil {
		_, _ = c.Write([]byte{0})
		c.Close()
	}
	return nil
}

func ifUp(s int, name string) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("guest network: %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("guest network: setting %s up: %w", name, err)
	}
	return nil
}

// rtentry is the kernel's struct rtentry (SIOCADDRT) on 64-bit Linux.
type rtentry struct {
	pad1    uintptr
	Dst     unix.RawSockaddrInet4
	Gateway unix.RawSockaddrInet4
	Genmask unix.RawSockaddrInet4
	Flags   uint16
	pad2    int16
	pad3    uintptr
	pad4    uintptr
	Metric  int16
	Dev     uintptr
	MTU     uintptr
	Window  uintptr
	Irtt    uint16
}

func inet4(ip net.IP) unix.RawSockaddrInet4 {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET}
	copy(sa.Addr[:], ip.To4())
	return sa
}
