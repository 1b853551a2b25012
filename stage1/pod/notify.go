package pod

import (
	"github.com/appc/spec/schema"
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
