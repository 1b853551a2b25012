package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// The registration API, over the unix socket.
const (
	pathPing = "/v1/ping"
	pathPods = "/v1/pods"
)

type connKey struct{}

// RegistrationServer is the registration API's HTTP server: serve it on
// the unix socket (see ListenRegistration).
func (s *Service) RegistrationServer() *http.Server {
	return &http.Server{
		Handler:           s.RegistrationHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
}

// RegistrationHandler serves the registration API. Every request must come
// from root (or the service's own user), by the socket's peer credentials;
// a registration lasts while the process that made it lives.
func (s *Service) RegistrationHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathPing, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Registered{Port: s.port})
	})
	mux.HandleFunc("POST "+pathPods, func(w http.ResponseWriter, r *http.Request) {
		cred := peer(r)
		var reg Registration
		body := http.MaxBytesReader(w, r.Body, MaxRegistration)
		if err := json.NewDecoder(body).Decode(&reg); err != nil {
			http.Error(w, "bad registration: "+err.Error(), http.StatusBadRequest)
			return
		}
		// The pod is registered while the registering process (stage0,
		// which becomes stage1's run entrypoint) lives.
		var (
			mu sync.Mutex
			p  *pod
		)
		stop, err := watchProcess(int(cred.Pid), func() {
			mu.Lock()
			defer mu.Unlock()
			if p != nil {
				s.unregisterIf(p)
			}
		})
		if errors.Is(err, unix.ESRCH) {
			http.Error(w, "the registering process is gone", http.StatusBadRequest)
			return
		} else if err != nil {
			s.log.Warn("cannot watch the registering process; the pod stays registered until gc", "pid", cred.Pid, "err", err)
			stop = func() {}
		}
		mu.Lock()
		registered, out, err := s.register(&reg, stop)
		p = registered
		mu.Unlock()
		if err != nil {
			stop()
			code := http.StatusBadRequest
			if errors.Is(err, errdefs.ErrBusy) {
				code = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), code)
			return
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("DELETE "+pathPods+"/{uuid}", func(w http.ResponseWriter, r *http.Request) {
		if !s.Unregister(r.PathValue("uuid")) {
			http.Error(w, "no such pod", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred := peer(r)
		if cred == nil || (cred.Uid != 0 && int(cred.Uid) != os.Geteuid()) {
			http.Error(w, "registration is for root only", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// peer returns the credentials of the process at the other end of the
// request's unix socket, nil when there are none.
func peer(r *http.Request) *unix.Ucred {
	c, ok := r.Context().Value(connKey{}).(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil {
		return nil
	}
	return cred
}

// watchProcess calls gone once process pid has ended; stop ends the watch
// without calling it.
func watchProcess(pid int, gone func()) (stop func(), err error) {
	if pid <= 0 {
		return nil, fmt.Errorf("no process to watch")
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	// A non-blocking descriptor joins the runtime's poller: waiting on it
	// takes no thread. A pidfd is readable once its process has ended.
	f := os.NewFile(uintptr(fd), "pidfd")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	stopped := make(chan struct{})
	go func() {
		err := raw.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(fds, 0)
			return n > 0
		})
		select {
		case <-stopped:
			return
		default:
		}
		if err == nil {
			gone()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stopped)
			f.Close()
		})
	}, nil
}
