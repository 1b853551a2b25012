// Package metadata is the appc metadata service (appc's ace.md, "App
// Container Metadata Service"), run by `orbit metadata-service`, and the
// client stage0 registers pods with.
//
// The service has two faces:
//
//   - registration, over a unix socket only root can reach (mode 0600 in a
//     directory of mode 0700, and the peer's credentials checked): stage0
//     registers a pod with its UUID, pod manifest and the image manifests
//     of its apps, and gets back a token; the registration lasts as long as
//     the process that made it (stage0, which becomes stage1's run
//     entrypoint), or until it is withdrawn (`orbit gc`);
//   - the apps' HTTP endpoints, on a TCP port (contract.MetadataPort by
//     default), under /TOKEN/acMetadata/v1/. The token, 256 random bits
//     in the pod's AC_METADATA_URL, is the only thing that says which pod
//     asks: never the source address.
//
// The HMAC key that signs the pods' identities is made when the service
// starts and kept in memory only: a restarted service forgets every
// registration and every signature it made.
package metadata

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Limits on what the service accepts.
const (
	// MaxRegistration bounds a registration's body (the pod manifest and
	// every app's image manifest).
	MaxRegistration = 64 << 20
	// MaxSignContent bounds what an app may ask to sign or verify.
	MaxSignContent = 1 << 20
	// MaxPods bounds the registered pods.
	MaxPods = 65536
)

// Registration is what stage0 tells the service about a pod.
type Registration struct {
	UUID string `json:"uuid"`
	// PodManifest is the pod's manifest, as in the pod directory.
	PodManifest json.RawMessage `json:"podManifest"`
	// Images holds each app's image manifest, by app name.
	Images map[string]json.RawMessage `json:"images"`
}

// Registered is the service's answer to a registration.
type Registered struct {
	// Token goes into the pod's AC_METADATA_URL.
	Token string `json:"token"`
	// Port is the TCP port the apps reach the service on.
	Port int `json:"port"`
}

// pod is a registered pod, as the apps see it.
type pod struct {
	uuid        string
	manifest    []byte // the pod manifest, as served
	annotations types.Annotations
	apps        map[types.ACName]*app
	tokenHash   [sha256.Size]byte
	// stop ends the watch on the registering process.
	stop func()
}

type app struct {
	imageManifest []byte // as registered
	imageID       string
	annotations   types.Annotations // the image's, with the pod manifest's over them
}

// Service is the registry of pods and the HMAC key. It is safe for
// concurrent use.
type Service struct {
	key  []byte
	port int
	log  *slog.Logger

	mu      sync.RWMutex
	byToken map[[sha256.Size]byte]*pod
	byUUID  map[string]*pod
}

// New makes a service whose apps reach it on port, with a fresh HMAC key.
func New(port int, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := make([]byte, sha512.BlockSize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &Service{key: key, port: port, log: log, byToken: map[[sha256.Size]byte]*pod{}, byUUID: map[string]*pod{}}, nil
}

// Register adds a pod (replacing an earlier registration of the same UUID,
// whose token stops working) and returns its new token. stop is called
// when the registration ends (Unregister, or a later registration of the
// same pod).
func (s *Service) Register(r *Registration, stop func()) (*Registered, error) {
	_, out, err := s.register(r, stop)
	return out, err
}

func (s *Service) register(r *Registration, stop func()) (*pod, *Registered, error) {
	p, err := podOf(r)
	if err != nil {
		return nil, nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	p.tokenHash = sha256.Sum256([]byte(token))
	p.stop = stop
	s.mu.Lock()
	old := s.byUUID[p.uuid]
	if old == nil && len(s.byUUID) >= MaxPods {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("%d pods registered already: %w", MaxPods, errdefs.ErrBusy)
	}
	if old != nil {
		delete(s.byToken, old.tokenHash)
	}
	s.byUUID[p.uuid] = p
	s.byToken[p.tokenHash] = p
	s.mu.Unlock()
	if old != nil && old.stop != nil {
		old.stop()
	}
	s.log.Info("pod registered", "pod", p.uuid)
	return p, &Registered{Token: token, Port: s.port}, nil
}

// Unregister removes a pod; its token stops working. It reports whether
// the pod was registered.
func (s *Service) Unregister(uuid string) bool {
	s.mu.Lock()
	p := s.byUUID[uuid]
	if p != nil {
		delete(s.byUUID, uuid)
		delete(s.byToken, p.tokenHash)
	}
	s.mu.Unlock()
	if p == nil {
		return false
	}
	if p.stop != nil {
		p.stop()
	}
	s.log.Info("pod unregistered", "pod", uuid)
	return true
}

// unregisterIf removes p if it is still the registration of its pod.
func (s *Service) unregisterIf(p *pod) {
	s.mu.Lock()
	if s.byUUID[p.uuid] != p {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.Unregister(p.uuid)
}

// Pods is the number of registered pods.
func (s *Service) Pods() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byUUID)
}

// lookup finds the pod a token belongs to. The map is keyed by the
// token's hash, so how long a lookup takes says nothing about the tokens.
func (s *Service) lookup(token string) *pod {
	h := sha256.Sum256([]byte(token))
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byToken[h]
}

// sign is the pod's signature of content: HMAC-SHA512 over the pod's
// canonical UUID (fixed length) followed by the content, so one pod's
// signature never passes for another's.
func (s *Service) sign(uuid string, content []byte) []byte {
	h := hmac.New(sha512.New, s.key)
	h.Write([]byte(uuid))
	h.Write(content)
	return h.Sum(nil)
}

// verify reports whether sig is the signature of content by pod uuid.
func (s *Service) verify(uuid string, content, sig []byte) bool {
	return hmac.Equal(s.sign(uuid, content), sig)
}

// podOf checks a registration and turns it into what the apps are served.
func podOf(r *Registration) (*pod, error) {
	id, err := types.NewUUID(r.UUID)
	if err != nil {
		return nil, fmt.Errorf("registration: pod UUID %q: %w", r.UUID, errdefs.ErrInvalid)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(r.PodManifest, &pm); err != nil {
		return nil, fmt.Errorf("registration: pod manifest: %v: %w", err, errdefs.ErrInvalid)
	}
	// The annotations are served both in the manifest and alone: the same
	// JSON in both, an empty list rather than null.
	if pm.Annotations == nil {
		pm.Annotations = types.Annotations{}
	}
	manifest, err := json.Marshal(&pm)
	if err != nil {
		return nil, fmt.Errorf("registration: pod manifest: %v: %w", err, errdefs.ErrInvalid)
	}
	p := &pod{uuid: id.String(), manifest: manifest, annotations: pm.Annotations, apps: map[types.ACName]*app{}}
	for _, ra := range pm.Apps {
		raw, ok := r.Images[ra.Name.String()]
		if !ok {
			return nil, fmt.Errorf("registration: no image manifest for app %s: %w", ra.Name, errdefs.ErrInvalid)
		}
		var im schema.ImageManifest
		if err := json.Unmarshal(raw, &im); err != nil {
			return nil, fmt.Errorf("registration: image manifest of app %s: %v: %w", ra.Name, err, errdefs.ErrInvalid)
		}
		annotations := append(types.Annotations(nil), im.Annotations...)
		for _, a := range ra.Annotations {
			annotations.Set(a.Name, a.Value)
		}
		if annotations == nil {
			annotations = types.Annotations{}
		}
		p.apps[ra.Name] = &app{imageManifest: append([]byte(nil), raw...), imageID: ra.Image.ID.String(), annotations: annotations}
	}
	if len(r.Images) != len(p.apps) {
		return nil, fmt.Errorf("registration: image manifests for apps the pod does not have: %w", errdefs.ErrInvalid)
	}
	return p, nil
}
