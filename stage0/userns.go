package stage0

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// The host IDs pods' user namespaces are taken from: ranges of
// contract.UserRangeCount IDs between userRangeFirst and userRangeEnd, the
// span systemd-nspawn's own --private-users=pick uses, above the IDs
// distributions give users and below those systemd reserves.
const (
	userRangeFirst = 0x00080000
	userRangeEnd   = 0x6fff0000
)

// nspawnUIDLocks is where systemd-nspawn records the ranges it picked for
// its own containers, one file per range named by its first ID.
const nspawnUIDLocks = "/run/systemd/nspawn-uid"

// userRangeLock, in the pods directory, serialises picking ranges.
const userRangeLock = "userns.lock"

// pickUserRange picks the host IDs of a new pod's user namespace: a range
// no other pod of podsDir holds (a pod holds its range until it is
// removed), that no systemd-nspawn container picked, and in which no user
// or group of the host's /etc/passwd and /etc/group lies. The search
// starts at a place derived from the pod's UUID, so concurrent pods rarely
// even contend; the pick is made under a lock and recorded (by the caller)
// before the lock is released.
func pickUserRange(ctx context.Context, podsDir, uuid string, record func(contract.UserRange) error) error {
	l, err := flock.Create(filepath.Join(podsDir, userRangeLock), 0o600)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Lock(ctx, flock.Exclusive); err != nil {
		return err
	}
	taken, err := takenUserRanges(podsDir)
	if err != nil {
		return err
	}
	h := fnv.New32a()
	h.Write([]byte(uuid))
	slots := uint32((userRangeEnd - userRangeFirst) / contract.UserRangeCount)
	start := h.Sum32() % slots
	for i := uint32(0); i < slots; i++ {
		shift := userRangeFirst + ((start+i)%slots)*contract.UserRangeCount
		if taken[shift] {
			continue
		}
		return record(contract.UserRange{Shift: shift, Count: contract.UserRangeCount})
	}
	return fmt.Errorf("no free range of %d host user IDs for the pod's user namespace: %w", contract.UserRangeCount, errdefs.ErrBusy)
}

// takenUserRanges lists, by their first ID, the ranges pickUserRange must
// not give: other pods', systemd-nspawn's, and those holding a host user
// or group.
func takenUserRanges(podsDir string) (map[uint32]bool, error) {
	taken := map[uint32]bool{}
	slot := func(id uint64) {
		if id >= userRangeFirst && id < userRangeEnd {
			taken[uint32(id-(id-userRangeFirst)%contract.UserRangeCount)] = true
		}
	}
	for _, d := range allStateDirs() {
		pods, _ := filepath.Glob(filepath.Join(podsDir, string(d), "*", recordFile))
		for _, f := range pods {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var rec podRecord
			if json.Unmarshal(data, &rec) != nil || rec.PrivateUsers == "" {
				continue
			}
			if r, err := contract.ParseUserRange(rec.PrivateUsers); err == nil {
				for id := uint64(r.Shift); id < uint64(r.Shift)+uint64(r.Count); id += contract.UserRangeCount {
					slot(id)
				}
				slot(uint64(r.Shift) + uint64(r.Count) - 1)
			}
		}
	}
	if ents, err := os.ReadDir(nspawnUIDLocks); err == nil {
		for _, e := range ents {
			if id, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
				slot(id)
				slot(id + contract.UserRangeCount - 1)
			}
		}
	}
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) < 3 {
				continue
			}
			if id, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
				slot(id)
			}
		}
		file.Close()
	}
	return taken, nil
}

// UserRange is the user namespace range a pod was prepared with
// (--private-users), if any.
func (p *Pod) UserRange() (contract.UserRange, bool, error) {
	rec, err := p.record()
	if err != nil || rec.PrivateUsers == "" {
		return contract.UserRange{}, false, err
	}
	r, err := contract.ParseUserRange(rec.PrivateUsers)
	return r, err == nil, err
}

// CheckUserNamespaces fails when this kernel cannot make the user
// namespace a pod with a range needs: built without them, or with
// user.max_user_namespaces at 0.
func CheckUserNamespaces() error {
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return fmt.Errorf("this kernel has no user namespaces: %w", errdefs.ErrNotFound)
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return fmt.Errorf("user namespaces are switched off on this host (user.max_user_namespaces is 0): %w", errdefs.ErrNotFound)
	}
	return nil
}
