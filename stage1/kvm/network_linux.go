package kvm

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/nspawn"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage1/supervisor"
)

// tapName is the VM's tap device in the pod's network namespace.
const tapName = "orbit-tap0"

// nic is the pod's network interface: a tap in the pod's network
// namespace, whose descriptor QEMU is handed, and the address the guest
// takes.
type nic struct {
	tap   *os.File
	guest supervisor.GuestNetwork
}

// setupNetwork gives the pod its networks exactly as the nspawn flavour
// does (CNI in the pod's network namespace), then joins the VM to the
// namespace's interface: a tap device beside it, with tc redirecting every
// frame from one to the other, and the guest taking the interface's MAC,
// address and default route. With --net=none the VM has no interface but
// its own loopback.
func setupNetwork(p *pod.Pod, flags *contract.RunOptions) (string, *nic, error) {
	if flags.Net == "none" {
		return "", nil, nil
	}
	netns, err := nspawn.SetupNetwork(p, flags)
	if err != nil {
		return "", nil, err
	}
	if netns == "" {
		return "", nil, fmt.Errorf("a kvm pod cannot share the host's network: %w", errdefs.ErrInvalid)
	}
	n, err := joinNetNS(netns)
	if err != nil {
		nspawn.TeardownNetwork(p)
		return "", nil, fmt.Errorf("joining the VM to the pod's network: %w", err)
	}
	return netns, n, nil
}

func teardownNetwork(p *pod.Pod) { nspawn.TeardownNetwork(p) }

// joinNetNS finds the CNI interface in the namespace, makes the tap and the
// redirections, and returns the tap with the guest's settings.
func joinNetNS(netns string) (*nic, error) {
	var (
		n   *nicInNS
		err error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread enters the namespace and is given up (never unlocked)
		// should it fail to come back.
		runtime.LockOSThread()
		var restore func() error
		restore, err = enterNetNS(netns)
		if err != nil {
			return
		}
		n, err = makeNIC()
		if rerr := restore(); rerr != nil {
			err = errors.Join(err, rerr)
			return
		}
		runtime.UnlockOSThread()
	}()
	<-done
	if err != nil {
		if n != nil {
			n.tap.Close()
		}
		return nil, err
	}
	if err := redirect(netns, n.ifName, tapName); err != nil {
		n.tap.Close()
		return nil, err
	}
	return &n.nic, nil
}

type nicInNS struct {
	nic
	ifName string
}

func enterNetNS(path string) (func() error, error) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	target, err := os.Open(path)
	if err != nil {
		self.Close()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		self.Close()
		return nil, fmt.Errorf("entering the pod's network namespace: %w", err)
	}
	return func() error {
		defer self.Close()
		return unix.Setns(int(self.Fd()), unix.CLONE_NEWNET)
	}, nil
}

// makeNIC runs in the pod's network namespace.
func makeNIC() (*nicInNS, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var found []net.Interface
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 && len(i.HardwareAddr) == 6 {
			found = append(found, i)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("a kvm pod joins exactly one network; its namespace has %d interfaces: %w", len(found), errdefs.ErrInvalid)
	}
	ifc := found[0]
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil, err
	}
	var addr string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			addr = ipn.String()
			break
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("the pod's interface %s has no IPv4 address: %w", ifc.Name, errdefs.ErrNotFound)
	}
	gw, err := defaultGateway()
	if err != nil {
		return nil, err
	}
	tap, err := makeTap(tapName)
	if err != nil {
		return nil, err
	}
	return &nicInNS{
		nic:    nic{tap: tap, guest: supervisor.GuestNetwork{MAC: ifc.HardwareAddr.String(), Address: addr, Gateway: gw}},
		ifName: ifc.Name,
	}, nil
}

// defaultGateway reads the namespace's IPv4 default route ("" for none).
func defaultGateway() (string, error) {
	f, err := os.Open("/proc/thread-self/net/route")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[1] != "00000000" {
			continue
		}
		b, err := hex.DecodeString(fields[2])
		if err != nil || len(b) != 4 {
			continue
		}
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, binary.LittleEndian.Uint32(b))
		return ip.String(), nil
	}
	return "", sc.Err()
}

// makeTap makes a tap device (no packet information header) in the
// current network namespace, brings it up, and returns its descriptor: the
// device lives as long as the descriptor, QEMU's once handed over.
func makeTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("making the tap device: %w", err)
	}
	if err := linkUp(name); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "tap"), nil
}

// linkUp sets an interface of the current network namespace up.
func linkUp(name string) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

// redirect joins two interfaces of the namespace with tc: every frame
// either receives leaves through the other (the pod's network sees the
// guest's NIC as its interface, and the namespace's own stack sees
// nothing).
func redirect(netns, a, b string) error {
	tc, err := exec.LookPath("tc")
	if err != nil {
		return fmt.Errorf("tc is not installed; on Debian install the package iproute2: %w", errdefs.ErrNotFound)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return fmt.Errorf("nsenter is not installed; on Debian it comes with util-linux: %w", errdefs.ErrNotFound)
	}
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		for _, args := range [][]string{
			{"qdisc", "add", "dev", pair[0], "ingress"},
			{"filter", "add", "dev", pair[0], "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", pair[1]},
		} {
			out, err := exec.Command(nsenter, append([]string{"--net=" + netns, tc}, args...)...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
			}
		}
	}
	return nil
}
