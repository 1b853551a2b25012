package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/metadata"
	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/stage1/contract"
)

type metadataServiceOptions struct {
	port    int
	address string
}

func newMetadataServiceCommand(g *globalOptions) *cobra.Command {
	var o metadataServiceOptions
	cmd := &cobra.Command{
		Use:   "metadata-service",
		Short: "Run the appc metadata service for pods started with --mds-register",
		Long: `Run the appc metadata service until stopped. Pods run with --mds-register
are registered with it over a unix socket only root can use
(<dir>/mds/registration.sock), and their apps reach it over HTTP at
AC_METADATA_URL, on --listen-port. Start it as a service (for example a
systemd unit; socket activation of either socket, or both, is supported).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMetadataService(cmd.Context(), g, &o)
		},
	}
	cmd.Flags().IntVar(&o.port, "listen-port", contract.MetadataPort, "the TCP port apps reach the service on")
	cmd.Flags().StringVar(&o.address, "listen-address", "", "the address to listen on for apps (default: every address, so pods on any network reach it)")
	return cmd
}

func runMetadataService(ctx context.Context, g *globalOptions, o *metadataServiceOptions) error {
	if o.port <= 0 || o.port > 65535 {
		return fmt.Errorf("--listen-port=%d: want a port from 1 to 65535: %w", o.port, errdefs.ErrInvalid)
	}
	if o.address != "" && net.ParseIP(o.address) == nil {
		return fmt.Errorf("--listen-address=%s: not an IP address: %w", o.address, errdefs.ErrInvalid)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the metadata service must run as root: %w", errdefs.ErrInvalid)
	}
	reg, apps, err := metadataListeners(g, o)
	if err != nil {
		return err
	}
	port := o.port
	if tcp, ok := apps.Addr().(*net.TCPAddr); ok {
		port = tcp.Port
	}
	svc, err := metadata.New(port, g.Log)
	if err != nil {
		return err
	}
	g.Log.Info("metadata service ready", "registration", reg.Addr().String(), "apps", apps.Addr().String())
	return svc.Serve(ctx, reg, apps)
}

// metadataListeners returns the registration socket and the apps' TCP
// listener: the ones systemd passed (socket activation: a unix socket is
// the registration socket, a TCP socket the apps'), the others made here.
func metadataListeners(g *globalOptions, o *metadataServiceOptions) (reg, apps net.Listener, err error) {
	inherited, err := activation.Listeners()
	if err != nil {
		return nil, nil, fmt.Errorf("socket activation: %w", err)
	}
	for _, l := range inherited {
		if l == nil {
			continue
		}
		switch l.Addr().Network() {
		case "unix":
			if reg == nil {
				reg = l
				continue
			}
		case "tcp":
			if apps == nil {
				apps = l
				continue
			}
		}
		l.Close()
		return nil, nil, fmt.Errorf("socket activation: unexpected socket %s %s; want one unix and one TCP socket: %w", l.Addr().Network(), l.Addr(), errdefs.ErrInvalid)
	}
	if reg == nil {
		if reg, err = metadata.ListenRegistration(metadata.SocketPath(g.Dir)); err != nil {
			return nil, nil, err
		}
	}
	if apps == nil {
		if apps, err = net.Listen("tcp", net.JoinHostPort(o.address, strconv.Itoa(o.port))); err != nil {
			reg.Close()
			return nil, nil, fmt.Errorf("--listen-port: %w", err)
		}
	}
	return reg, apps, nil
}

// checkMetadataService refuses --mds-register, before a pod is made, when
// no metadata service serves this data directory, or the pod would have
// no network to reach it on.
func (r *stage1RunFlags) checkMetadataService(ctx context.Context, g *globalOptions) error {
	if !r.mdsRegister {
		return nil
	}
	for _, n := range r.net {
		if n == "none" {
			return fmt.Errorf("--mds-register: a pod on --net=none cannot reach the metadata service: %w", errdefs.ErrInvalid)
		}
	}
	socket := metadata.SocketPath(g.Dir)
	if _, err := metadata.NewClient(socket).Ping(ctx); err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("--mds-register: the metadata service is not running (nothing listens on %s); start it with \"orbit --dir=%s metadata-service\" (as a service, for example a systemd unit): %w", socket, g.Dir, errdefs.ErrNotFound)
		}
		return fmt.Errorf("--mds-register: %w", err)
	}
	return nil
}

// registerPod registers the pod with the metadata service under
// --mds-register and gives stage1 the pod's token.
func (r *stage1RunFlags) registerPod(ctx context.Context, g *globalOptions, p *stage0.Pod, cfg *stage0.RunConfig) error {
	if !r.mdsRegister {
		return nil
	}
	token, err := stage0.RegisterMetadata(ctx, p, metadata.SocketPath(g.Dir))
	if err != nil {
		return fmt.Errorf("--mds-register: %w", err)
	}
	cfg.MDSToken = token
	return nil
}

// unregisterMetadata withdraws an exited pod's registration from the
// metadata service, if one runs and still has it (it drops a pod itself
// when the pod's run process ends).
func unregisterMetadata(ctx context.Context, g *globalOptions, uuid string) {
	err := stage0.UnregisterMetadata(ctx, uuid, metadata.SocketPath(g.Dir))
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		g.Log.Debug("withdrawing a pod's metadata service registration", "pod", uuid, "err", err)
	}
}
