package stage0

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// A pod's summary (summary.json beside orbit.json) is what `orbit list`
// shows of it that the pod manifest holds: its apps, their images' IDs
// and names, and when the pod was made. It is derived data, a cache: the
// pod manifest stays the truth. The summary carries the manifest's
// identity (inode, size, modification time) when it was made; a summary
// that is missing, unreadable, of another version, or whose manifest has
// changed since (a sandbox's app add and rm rewrite it) is ignored and
// made again from the pod directory. It is written with an atomic rename,
// so a reader sees a whole one or none, whichever process writes it.
// A pod's state is never in it: that is where the directory is and who
// holds its lock, now (see "Pods" in Documentation/design.md).

const (
	summaryFile    = "summary.json"
	summaryVersion = 1
)

type podSummary struct {
	Version   int           `json:"v"`
	Manifest  manifestStamp `json:"manifest"`
	CreatedAt time.Time     `json:"createdAt"`
	Mutable   bool          `json:"mutable,omitempty"`
	Apps      []summaryApp  `json:"apps"`
}

type summaryApp struct {
	Name      string `json:"name"`
	ImageID   string `json:"imageID"`
	ImageName string `json:"imageName,omitempty"`
}

// manifestStamp tells one version of the pod manifest from another: an
// atomic replace makes a new inode, an edit in place a new size or time.
type manifestStamp struct {
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
}

func stampOf(path string) (manifestStamp, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return manifestStamp{}, err
	}
	return manifestStamp{Ino: st.Ino, Size: st.Size, MTime: st.Mtim.Nano()}, nil
}

// imageNameOf is an app's image as `orbit list` names it, rkt's way: the
// name and its version label.
func imageNameOf(ra schema.RuntimeApp) string {
	if ra.Image.Name == nil {
		return ""
	}
	n := ra.Image.Name.String()
	if v, ok := ra.Image.Labels.Get("version"); ok {
		n += ":" + v
	}
	return n
}

// summary returns the pod's summary if it is current, else nil.
func (p *Pod) summary() *podSummary {
	var s podSummary
	if readSmall(p.File(summaryFile), func(data []byte) error { return json.Unmarshal(data, &s) }) != nil || s.Version != summaryVersion {
		return nil
	}
	now, err := stampOf(contract.PodManifest(p.Path()))
	if err != nil || now != s.Manifest {
		return nil
	}
	return &s
}

// makeSummary builds the pod's summary from its directory.
func (p *Pod) makeSummary() (*podSummary, error) {
	path := contract.PodManifest(p.Path())
	before, err := stampOf(path)
	if err != nil {
		return nil, err
	}
	pm, err := p.Manifest()
	if err != nil {
		return nil, err
	}
	after, err := stampOf(path)
	if err != nil {
		return nil, err
	}
	if before != after {
		return nil, errors.New("pod manifest changed while read")
	}
	return p.summaryWith(pm, after), nil
}

// summaryOf is the summary of a pod whose manifest pm this process has
// just written.
func (p *Pod) summaryOf(pm *schema.PodManifest) (*podSummary, error) {
	stamp, err := stampOf(contract.PodManifest(p.Path()))
	if err != nil {
		return nil, err
	}
	return p.summaryWith(pm, stamp), nil
}

func (p *Pod) summaryWith(pm *schema.PodManifest, stamp manifestStamp) *podSummary {
	s := &podSummary{Version: summaryVersion, Manifest: stamp, CreatedAt: p.CreatedAt(), Mutable: Mutable(pm), Apps: []summaryApp{}}
	for _, ra := range pm.Apps {
		s.Apps = append(s.Apps, summaryApp{Name: ra.Name.String(), ImageID: ra.Image.ID.String(), ImageName: imageNameOf(ra)})
	}
	return s
}

// storeSummary writes the pod's summary, replacing any.
func (p *Pod) storeSummary(s *podSummary) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Replace(p.File(summaryFile), data, 0o644)
}

// smallBufs are readSmall's buffers: a listing reads a file per pod,
// and fresh 4 KiB buffers for each cost more in page faults than the read.
var smallBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// readSmall reads a small regular file into a buffer of smallBufs with
// three system calls (open, read, close) where os.ReadFile makes several
// more (a stat for the size, the poller's registration): a listing reads
// one per pod. fn gets the data, which it must not keep.
func readSmall(path string, fn func([]byte) error) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	buf := *bp
	n := 0
	for {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		n += m
		// A short read of a regular file is its end.
		if m == 0 || n < len(buf) {
			return fn(buf[:n])
		}
		if len(buf) >= 1<<20 {
			return unix.EFBIG
		}
		buf = append(buf, make([]byte, len(buf))...)
		*bp = buf
	}
}
