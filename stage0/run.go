package stage0

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// The stage1 entrypoint annotations (see Documentation/design.md, "The
// stage1 contract").
const (
	annRun              = "coreos.com/rkt/stage1/run"
	annEnter            = "coreos.com/rkt/stage1/enter"
	annGC               = "coreos.com/rkt/stage1/gc"
	annStop             = "coreos.com/rkt/stage1/stop"
	annInterfaceVersion = "coreos.com/rkt/stage1/interface-version"
)

// RunConfig is how stage1 is asked to run a pod.
type RunConfig struct {
	Debug       bool
	Interactive bool
	Hostname    string
	// Net is the --net value given to stage1; empty means not given.
	Net                            []string
	LocalConfig                    string
	DNS                            DNSConfig
	MDSToken                       string
	DisableCapabilitiesRestriction bool
	DisablePaths                   bool
	DisableSeccomp                 bool

	dnsConfMode string // worked out from DNS by Run
}

// Stage1 is a pod's stage1 image manifest and where its rootfs is.
type Stage1 struct {
	Manifest *schema.ImageManifest
	Rootfs   string
}

// Stage1Of reads the stage1 manifest of a pod.
func Stage1Of(p *Pod) (*Stage1, error) {
	data, err := os.ReadFile(p.File("stage1", "manifest"))
	if err != nil {
		return nil, fmt.Errorf("pod %s: reading its stage1 manifest: %w", p.UUID, err)
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("pod %s: stage1 manifest: %w: %w", p.UUID, err, errdefs.ErrInvalid)
	}
	return &Stage1{Manifest: &m, Rootfs: p.File("stage1", "rootfs")}, nil
}

// Entrypoint returns the host path of the stage1 entrypoint named by ann.
func (s *Stage1) Entrypoint(ann string) (string, error) {
	v, ok := s.Manifest.Annotations.Get(ann)
	if !ok || v == "" {
		return "", fmt.Errorf("stage1 image %s has no %q entrypoint: %w", s.Manifest.Name, ann, errdefs.ErrNotFound)
	}
	rel := filepath.Clean("/" + v)
	return filepath.Join(s.Rootfs, rel), nil
}

// InterfaceVersion is the stage1 interface version the image implements.
func (s *Stage1) InterfaceVersion() int {
	v, ok := s.Manifest.Annotations.Get(annInterfaceVersion)
	if !ok {
		return 1
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// runArgs builds the run entrypoint's arguments for the stage1's interface
// version.
func (s *Stage1) runArgs(uuid string, cfg RunConfig) []string {
	v := s.InterfaceVersion()
	var args []string
	if cfg.Debug {
		args = append(args, "--debug")
	}
	if len(cfg.Net) > 0 {
		args = append(args, "--net="+strings.Join(cfg.Net, ","))
	}
	if cfg.MDSToken != "" {
		args = append(args, "--mds-token="+cfg.MDSToken)
	}
	if cfg.Interactive {
		args = append(args, "--interactive")
	}
	if cfg.LocalConfig != "" {
		args = append(args, "--local-config="+cfg.LocalConfig)
	}
	if v >= 2 && cfg.Hostname != "" {
		args = append(args, "--hostname="+cfg.Hostname)
	}
	if v >= 3 {
		if cfg.DisableCapabilitiesRestriction {
			args = append(args, "--disable-capabilities-restriction")
		}
		if cfg.DisablePaths {
			args = append(args, "--disable-paths")
		}
		if cfg.DisableSeccomp {
			args = append(args, "--disable-seccomp")
		}
	}
	if v >= 4 && cfg.dnsConfMode != "" {
		args = append(args, "--dns-conf-mode="+cfg.dnsConfMode)
	}
	return append(args, uuid)
}

// Run starts a pod that this process holds locked in prepare or prepared:
// it moves the pod to run, mounts its root filesystems and execs the stage1
// run entrypoint with the lock inherited (RKT_LOCK_FD). It returns only on
// failure; stage1's exit status becomes this process's. Nothing in it
// waits, so it takes no context: the running pod is stopped by signals to
// this process, which reach stage1 once it is exec'd.
func Run(p *Pod, cfg RunConfig) error {
	if p.lock == nil {
		return fmt.Errorf("pod %s: lock not held: %w", p.UUID, errdefs.ErrInvalid)
	}
	// Refuse what this stage1 cannot do before the pod is started.
	if rec, err := p.record(); err != nil {
		return fmt.Errorf("pod %s: %w", p.UUID, err)
	} else if err := cfg.Check(flavourOf(rec.Stage1Flavour)); err != nil {
		return err
	}
	if s1, err := Stage1Of(p); err != nil {
		return err
	} else if mode, _, _, err := cfg.DNS.dnsConfMode(); err != nil {
		return err
	} else if mode != "" && s1.InterfaceVersion() < 4 {
		return fmt.Errorf("stage1 image %s implements stage1 interface version %d; --dns and --hosts-entry need version 4: %w", s1.Manifest.Name, s1.InterfaceVersion(), errdefs.ErrInvalid)
	}
	if err := p.ToRun(); err != nil {
		return err
	}
	rec, err := p.record()
	if err != nil {
		return fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	if err := mountPod(p, rec); err != nil {
		return fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	s1, err := Stage1Of(p)
	if err != nil {
		return err
	}
	entry, err := s1.Entrypoint(annRun)
	if err != nil {
		return err
	}
	if cfg.dnsConfMode, err = writeDNSFiles(s1.Rootfs, cfg.DNS); err != nil {
		return err
	}
	rec.StartedAt = time.Now().UTC()
	if err := p.writeRecord(rec); err != nil {
		return err
	}
	fd, err := p.LockFd()
	if err != nil {
		return err
	}
	// The entrypoint is exec'd after the chdir into the pod.
	if entry, err = filepath.Abs(entry); err != nil {
		return err
	}
	if err := os.Chdir(p.Path()); err != nil {
		return err
	}
	argv := append([]string{entry}, s1.runArgs(p.UUID, cfg)...)
	env := append(os.Environ(), fmt.Sprintf("RKT_LOCK_FD=%d", fd))
	err = unix.Exec(entry, argv, env)
	return fmt.Errorf("starting stage1 %s: %w", entry, err)
}
