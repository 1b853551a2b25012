package nspawn

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// journaldSocket is systemd-journald's native socket on the host, and
// containerJournalSocket where the pod's supervisor finds it.
const (
	journaldSocket         = "/run/systemd/journal/socket"
	containerJournalSocket = "/run/orbit-journal.socket"
)

// planJournal gives the supervisor journald's socket when the pod's
// output is a journal stream (a unit's stdout or stderr: JOURNAL_STREAM
// names its device and inode), so a multi-app pod's lines are logged under
// each app's name rather than all under orbit's.
func planJournal(pl *plan) {
	if !journalStream(os.Getenv("JOURNAL_STREAM")) {
		return
	}
	if fi, err := os.Stat(journaldSocket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return
	}
	pl.binds = append(pl.binds, bind{source: journaldSocket, target: containerJournalSocket})
	pl.config.JournalSocket = containerJournalSocket
}

// journalStream reports whether stdout or stderr is the journal stream
// JOURNAL_STREAM ("DEVICE:INODE") names.
func journalStream(v string) bool {
	if v == "" {
		return false
	}
	for _, fd := range []int{1, 2} {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && fmt.Sprintf("%d:%d", st.Dev, st.Ino) == v {
			return true
		}
	}
	return false
}

// machinedService is how the system bus starts systemd-machined on demand.
var machinedService = []string{
	"/usr/share/dbus-1/system-services/org.freedesktop.machine1.service",
	"/run/dbus-1/system-services/org.freedesktop.machine1.service",
}

// machined reports whether systemd-machined runs or the bus can start it:
// with a bus but without machined, systemd-nspawn --register=yes fails, so
// the pod is not registered.
func machined() bool {
	if _, err := os.Stat("/run/systemd/machines"); err == nil {
		return true
	}
	for _, f := range machinedService {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}
