package supervisor

// The supervisor's guest mode: PID 1 of a kvm pod's virtual machine. The
// host (stage1/kvm) shares the pod's stage1 rootfs with the guest over
// virtio-9p, writes GuestConfig and the supervisor's Config into it, and
// talks to the guest over virtio-serial ports named below. See
// Documentation/running-kvm.md.

// Names the guest and the host agree on.
const (
	// GuestRootTag is the 9p mount tag of the stage1 rootfs, which the
	// guest makes its root.
	GuestRootTag = "orbit-root"
	// GuestConfigPath is GuestConfig's file inside the stage1 rootfs.
	GuestConfigPath = "/orbit-pod/guest.json"
	// The virtio-serial ports: the apps' standard output and error, their
	// standard input (interactive pods only), and the control channel.
	GuestPortStdout  = "orbit.stdout"
	GuestPortStderr  = "orbit.stderr"
	GuestPortStdin   = "orbit.stdin"
	GuestPortControl = "orbit.control"
	// GuestProbeArg on the kernel command line makes the guest power off
	// as soon as it runs, after saying GuestProbeOK on the control port:
	// the host's check that an accelerator boots the guest at all.
	GuestProbeArg = "orbit.probe"
	GuestProbeOK  = "ok"
)

// Control messages, one a line. The host sends GuestStop ("stop the pod in
// order"); the guest sends GuestExit followed by the pod's exit status
// when the pod is done, just before it powers off.
const (
	GuestStop = "stop"
	// GuestKill kills every process of the pod at once (stop --force):
	// the supervisor records the apps as killed and the pod ends.
	GuestKill = "kill"
	GuestExit = "exit "
	// GuestMaxLine bounds a control line either side reads.
	GuestMaxLine = 256
)

// GuestConfig is what the guest needs besides the supervisor's Config.
type GuestConfig struct {
	// Shares are the host directories shared besides the root (volumes,
	// the host's DNS files), each mounted at Target inside the root.
	Shares []GuestShare `json:"shares,omitempty"`
	// Hostname is the VM's host name.
	Hostname string `json:"hostname"`
	// SupervisorConfig is the supervisor's Config file inside the root.
	SupervisorConfig string `json:"supervisorConfig"`
	// Debug logs the supervisor's diagnostics at debug level.
	Debug bool `json:"debug,omitempty"`
	// Network configures the guest's interface, when the pod has one.
	Network *GuestNetwork `json:"network,omitempty"`
}

// GuestShare is one 9p share.
type GuestShare struct {
	Tag      string `json:"tag"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// GuestNetwork is the address the pod's CNI network gave it, which the
// guest takes on its virtio-net interface.
type GuestNetwork struct {
	// MAC is the interface's hardware address, as the host gave QEMU.
	MAC string `json:"mac"`
	// Address is the interface's address in CIDR form ("10.1.2.3/24").
	Address string `json:"address"`
	// Gateway is the default route's next hop ("" for none).
	Gateway string `json:"gateway,omitempty"`
}

// Enter: the host's enter requests travel over their own port, one at a
// time, as frames: a type byte, a big-endian uint32 length, the payload
// (at most GuestMaxFrame bytes). The host sends GuestFrameRequest (a JSON
// GuestEnterRequest), then GuestFrameStdin data and GuestFrameStdinEOF;
// the guest answers with GuestFrameStdout and GuestFrameStderr data and
// ends with GuestFrameExit (the decimal exit status).
const (
	GuestPortEnter = "orbit.enter"

	GuestFrameRequest  = 'R'
	GuestFrameStdin    = 'I'
	GuestFrameStdinEOF = 'i'
	GuestFrameStdout   = 'O'
	GuestFrameStderr   = 'E'
	GuestFrameExit     = 'X'

	GuestMaxFrame = 64 << 10
)

// GuestEnterRequest is a command to run beside a running app.
type GuestEnterRequest struct {
	App     string   `json:"app"`
	Command []string `json:"command"`
	// Term is the caller's TERM, if it has one.
	Term string `json:"term,omitempty"`
}
