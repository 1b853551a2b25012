package cgroup

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// DeviceRule allows access to a class of device nodes: the only way a
// confined group's processes can make (mknod) or open a device node.
type DeviceRule struct {
	// Type is 'c' (character), 'b' (block) or 'a' (both).
	Type byte `json:"type"`
	// Major and Minor select the device; AnyDevice matches every number.
	Major int64 `json:"major"`
	Minor int64 `json:"minor"`
	// Access is a non-empty subset of "rwm": read, write, mknod.
	Access string `json:"access"`
}

// AnyDevice as a DeviceRule's Major or Minor matches every number.
const AnyDevice = -1

// Validate checks the rule.
func (r DeviceRule) Validate() error {
	if r.Type != 'c' && r.Type != 'b' && r.Type != 'a' {
		return fmt.Errorf("device rule %q: type must be c, b or a: %w", r.String(), errdefs.ErrInvalid)
	}
	for _, n := range []int64{r.Major, r.Minor} {
		if n < AnyDevice || n > 1<<32-1 {
			return fmt.Errorf("device rule %q: bad device number: %w", r.String(), errdefs.ErrInvalid)
		}
	}
	if r.Access == "" || strings.Trim(r.Access, "rwm") != "" {
		return fmt.Errorf("device rule %q: access must be made of r, w and m: %w", r.String(), errdefs.ErrInvalid)
	}
	return nil
}

// String is the rule in the v1 devices controller's syntax ("c 1:3 rwm").
func (r DeviceRule) String() string {
	num := func(n int64) string {
		if n == AnyDevice {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", r.Type, num(r.Major), num(r.Minor), r.Access)
}

// DefaultDevices is the allow-list of a pod: the devices every Linux
// program expects (the same as runc's and rkt's defaults, less
// /dev/net/tun). Every other device, block devices included, can be neither
// made nor opened.
func DefaultDevices() []DeviceRule {
	return []DeviceRule{
		{Type: 'c', Major: 1, Minor: 3, Access: "rwm"},          // /dev/null
		{Type: 'c', Major: 1, Minor: 5, Access: "rwm"},          // /dev/zero
		{Type: 'c', Major: 1, Minor: 7, Access: "rwm"},          // /dev/full
		{Type: 'c', Major: 1, Minor: 8, Access: "rwm"},          // /dev/random
		{Type: 'c', Major: 1, Minor: 9, Access: "rwm"},          // /dev/urandom
		{Type: 'c', Major: 5, Minor: 0, Access: "rwm"},          // /dev/tty
		{Type: 'c', Major: 5, Minor: 1, Access: "rwm"},          // /dev/console
		{Type: 'c', Major: 5, Minor: 2, Access: "rwm"},          // /dev/ptmx
		{Type: 'c', Major: 136, Minor: AnyDevice, Access: "rw"}, // /dev/pts/*
	}
}

// setDevicesV1 makes dir, a group in a v1 devices hierarchy, refuse every
// device but those the rules allow.
func setDevicesV1(dir string, rules []DeviceRule) error {
	if err := writeFile(dir, "devices.deny", "a"); err != nil {
		return err
	}
	for _, r := range rules {
		if err := writeFile(dir, "devices.allow", r.String()); err != nil {
			return err
		}
	}
	return nil
}
