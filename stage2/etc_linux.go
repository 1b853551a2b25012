package stage2

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/inroot"
)

// etcFiles gives the app the files of /etc that rkt's apps found there:
// /etc/mtab, a link to /proc/self/mounts when the image has none (mount,
// df and friends read it), and /etc/hostname holding hostname when one is
// given. Both are made inside the root (links of the image resolve inside
// it); a read-only root or /etc is left as it is.
func etcFiles(root *inroot.Root, hostname string) error {
	etc, err := root.MkdirAll("/etc")
	if err != nil {
		if errors.Is(err, unix.EROFS) {
			return nil
		}
		return err
	}
	defer unix.Close(etc)
	if err := unix.Symlinkat("../proc/self/mounts", etc, "mtab"); err != nil && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("mtab: %w", err)
	}
	if hostname == "" {
		return nil
	}
	fd, err := root.CreateFile("/etc/hostname")
	if errors.Is(err, unix.EROFS) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("hostname: not a regular file")
	}
	w, err := unix.Open(fdPath(fd), unix.O_WRONLY|unix.O_TRUNC|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EROFS) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	defer unix.Close(w)
	if _, err := unix.Write(w, []byte(hostname+"\n")); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	return nil
}
