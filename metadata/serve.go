package metadata

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Serve serves registration on reg and the apps on apps until ctx is done
// or either server fails, then shuts both down.
func (s *Service) Serve(ctx context.Context, reg, apps net.Listener) error {
	regSrv, appSrv := s.RegistrationServer(), s.AppServer()
	errs := make(chan error, 2)
	go func() { errs <- regSrv.Serve(reg) }()
	go func() { errs <- appSrv.Serve(LimitListener(apps, MaxAppConnections)) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	regSrv.Shutdown(shutdown)
	appSrv.Shutdown(shutdown)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
