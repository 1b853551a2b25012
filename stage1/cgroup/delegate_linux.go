package cgroup

import (
	"fmt"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// CheckDelegated reports, on a layout rebased on the caller's own cgroups
// (Nested), whether the caller can give its children the controllers lim
// needs. On a cgroup2-only host a process may use below its own cgroup only
// the controllers its cgroup offers (cgroup.controllers), which a systemd
// unit's cgroup does only with Delegate=yes (or Delegate=memory cpu...).
// The error names the cgroup, the missing controller and what it offers.
func (l *Layout) CheckDelegated(lim Limits) error {
	for _, c := range lim.controllers() {
		if l.v1For(c) != nil {
			continue
		}
		if l.Unified == nil {
			return fmt.Errorf("the %s controller is not available on this host: %w", c, errdefs.ErrNotFound)
		}
		if !l.Unified.Has(c) {
			offers := strings.Join(l.Unified.Controllers, " ")
			if offers == "" {
				offers = "none"
			}
			return fmt.Errorf("cgroup %s does not delegate the %s controller (it offers: %s): run orbit from a unit with Delegate=yes, on a host whose cgroup2 tree has the controller: %w", l.Unified.Root, c, offers, errdefs.ErrNotFound)
		}
	}
	return nil
}
