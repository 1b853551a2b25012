package metadata

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/appc/spec/schema/types"
)

// Content types of the appc endpoints.
const (
	contentJSON  = "application/json"
	contentASCII = "text/plain; charset=us-ascii"
	contentUTF8  = "text/plain; charset=utf-8"
)

// Timeouts and sizes of the apps' HTTP server: a pod that opens
// connections and sends nothing, or sends slowly, holds them only this
// long.
const (
	appReadHeaderTimeout = 5 * time.Second
	appReadTimeout       = 10 * time.Second
	appWriteTimeout      = 10 * time.Second
	appIdleTimeout       = 30 * time.Second
	appMaxHeaderBytes    = 8 << 10
	// MaxAppConnections bounds the apps' open connections, all pods
	// together.
	MaxAppConnections = 1024
)

// AppServer is the apps' HTTP server. Serve it on a listener wrapped with
// LimitListener.
func (s *Service) AppServer() *http.Server {
	return &http.Server{
		Handler:           s.AppHandler(),
		ReadHeaderTimeout: appReadHeaderTimeout,
		ReadTimeout:       appReadTimeout,
		WriteTimeout:      appWriteTimeout,
		IdleTimeout:       appIdleTimeout,
		MaxHeaderBytes:    appMaxHeaderBytes,
	}
}

// AppHandler serves the appc endpoints under /TOKEN/acMetadata/v1.
func (s *Service) AppHandler() http.Handler {
	mux := http.NewServeMux()
	const base = "/{token}/acMetadata/v1"
	handle := func(pattern string, h func(http.ResponseWriter, *http.Request, *pod)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			p := s.lookup(r.PathValue("token"))
			if p == nil {
				http.Error(w, "unknown token", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			h(w, r, p)
		})
	}
	handle("GET "+base+"/pod/annotations", func(w http.ResponseWriter, r *http.Request, p *pod) {
		writeJSON(w, p.annotations)
	})
	handle("GET "+base+"/pod/annotations/{name...}", func(w http.ResponseWriter, r *http.Request, p *pod) {
		writeAnnotation(w, p.annotations, r.PathValue("name"))
	})
	handle("GET "+base+"/pod/manifest", func(w http.ResponseWriter, r *http.Request, p *pod) {
		write(w, contentJSON, p.manifest)
	})
	handle("GET "+base+"/pod/uuid", func(w http.ResponseWriter, r *http.Request, p *pod) {
		write(w, contentASCII, []byte(p.uuid))
	})
	handle("POST "+base+"/pod/hmac/sign", func(w http.ResponseWriter, r *http.Request, p *pod) {
		if !readForm(w, r) {
			return
		}
		content, ok := r.PostForm["content"]
		if !ok || len(content) != 1 {
			http.Error(w, "want one form value content", http.StatusBadRequest)
			return
		}
		sig := s.sign(p.uuid, []byte(content[0]))
		write(w, contentASCII, []byte(base64.StdEncoding.EncodeToString(sig)))
	})
	handle("POST "+base+"/pod/hmac/verify", func(w http.ResponseWriter, r *http.Request, p *pod) {
		if !readForm(w, r) {
			return
		}
		content, uuid, sig := r.PostForm["content"], r.PostForm.Get("uuid"), r.PostForm.Get("signature")
		if len(content) != 1 || uuid == "" || sig == "" {
			http.Error(w, "want form values content, uuid and signature", http.StatusBadRequest)
			return
		}
		id, err := types.NewUUID(uuid)
		if err != nil {
			http.Error(w, "uuid is not a pod UUID", http.StatusBadRequest)
			return
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || !s.verify(id.String(), []byte(content[0]), raw) {
			w.Header().Set("Content-Type", contentASCII)
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", contentASCII)
		w.WriteHeader(http.StatusOK)
	})
	appOf := func(w http.ResponseWriter, r *http.Request, p *pod) *app {
		name, err := types.NewACName(r.PathValue("app"))
		if err == nil {
			if a := p.apps[*name]; a != nil {
				return a
			}
		}
		http.Error(w, "no such app in the pod", http.StatusNotFound)
		return nil
	}
	handle("GET "+base+"/apps/{app}/annotations", func(w http.ResponseWriter, r *http.Request, p *pod) {
		if a := appOf(w, r, p); a != nil {
			writeJSON(w, a.annotations)
		}
	})
	handle("GET "+base+"/apps/{app}/annotations/{name...}", func(w http.ResponseWriter, r *http.Request, p *pod) {
		if a := appOf(w, r, p); a != nil {
			writeAnnotation(w, a.annotations, r.PathValue("name"))
		}
	})
	handle("GET "+base+"/apps/{app}/image/manifest", func(w http.ResponseWriter, r *http.Request, p *pod) {
		if a := appOf(w, r, p); a != nil {
			write(w, contentJSON, a.imageManifest)
		}
	})
	handle("GET "+base+"/apps/{app}/image/id", func(w http.ResponseWriter, r *http.Request, p *pod) {
		if a := appOf(w, r, p); a != nil {
			write(w, contentASCII, []byte(a.imageID))
		}
	})
	return mux
}

// readForm reads a POSTed form of at most MaxSignContent (plus room for
// the other fields), answering the request itself when it cannot.
func readForm(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		http.Error(w, "want a form (application/x-www-form-urlencoded)", http.StatusUnsupportedMediaType)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 2*MaxSignContent)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "form too large", http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "bad form", http.StatusBadRequest)
		}
		return false
	}
	for _, v := range r.PostForm["content"] {
		if len(v) > MaxSignContent {
			http.Error(w, "content too large", http.StatusRequestEntityTooLarge)
			return false
		}
	}
	return true
}

func writeAnnotation(w http.ResponseWriter, as types.Annotations, name string) {
	n, err := types.NewACIdentifier(name)
	if err == nil {
		if v, ok := as.Get(n.String()); ok {
			write(w, contentUTF8, []byte(v))
			return
		}
	}
	http.Error(w, "no such annotation", http.StatusNotFound)
}

func writeJSON(w http.ResponseWriter, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding", http.StatusInternalServerError)
		return
	}
	write(w, contentJSON, data)
}

func write(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(body)
}
