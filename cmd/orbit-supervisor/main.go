// Command orbit-supervisor is orbit's pod supervisor on its own: a small
// static binary that stage1 images run as the pod's PID 1 (in a container
// or a VM) instead of the whole orbit binary. Started as
// ".../stage2/launch" (as stage2.Command re-executes it) it is the stage2
// launcher; started by a kernel as /init (a kvm pod's initramfs) it is the
// VM's init, in the supervisor's guest mode.
//
//	CGO_ENABLED=0 go build -trimpath -ldflags=-s ./cmd/orbit-supervisor
package main

import (
	"os"
	"strings"

	"github.com/orbit-containers/orbit/stage1/supervisor"
	"github.com/orbit-containers/orbit/stage2"
)

func main() {
	if strings.HasSuffix(os.Args[0], stage2.LauncherName) {
		os.Exit(stage2.Main(os.Args[1:]))
	}
	if os.Getpid() == 1 && os.Args[0] == "/init" {
		supervisor.GuestMain()
	}
	os.Exit(supervisor.Main(os.Args[1:]))
}
