package pod

import (
	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// notifyAnnotation marks an image whose app tells the service manager
// itself when it is ready (sd_notify), as rkt reads it.
const notifyAnnotation = "appc.io/executor/supports-systemd-notify"

// SupportsNotify reports whether an app sends its own readiness
// notification: its image (or its runtime app) says so.
func SupportsNotify(ra *schema.RuntimeApp, im *schema.ImageManifest) bool {
	if v, ok := ra.Annotations.Get(notifyAnnotation); ok {
		return v == "true"
	}
	if im != nil {
		if v, ok := im.Annotations.Get(notifyAnnotation); ok {
			return v == "true"
		}
	}
	return false
}

// SocketActivated reports whether an app takes the pod's socket-activation
// sockets: a port of its app declares socketActivated (appc).
func SocketActivated(ra *schema.RuntimeApp, im *schema.ImageManifest) bool {
	for _, a := range []*types.App{ra.App, appOf(im)} {
		if a == nil {
			continue
		}
		for _, p := range a.Ports {
			if p.SocketActivated {
				return true
			}
		}
	}
	return false
}

func appOf(im *schema.ImageManifest) *types.App {
	if im == nil {
		return nil
	}
	return im.App
}
