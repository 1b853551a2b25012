package metadata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// errNotRunning is why a client found no service.
var errNotRunning = errors.New("the metadata service is not running")

// Client talks to the registration API of a service.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client of the service listening on socket.
func NewClient(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
			DisableKeepAlives: true,
		},
	}}
}

// Ping checks that the service runs and returns the port apps reach it on.
// A service that is not there is errdefs.ErrNotFound.
func (c *Client) Ping(ctx context.Context) (int, error) {
	var out Registered
	if err := c.do(ctx, http.MethodGet, pathPing, nil, &out); err != nil {
		return 0, err
	}
	return out.Port, nil
}

// Register registers a pod and returns its token and the service's port.
func (c *Client) Register(ctx context.Context, r *Registration) (*Registered, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var out Registered
	if err := c.do(ctx, http.MethodPost, pathPods, body, &out); err != nil {
		return nil, err
	}
	if out.Token == "" || out.Port <= 0 {
		return nil, fmt.Errorf("metadata service: bad answer to a registration: %w", errdefs.ErrInvalid)
	}
	return &out, nil
}

// Unregister withdraws a pod's registration; a pod that is not registered
// is errdefs.ErrNotFound.
func (c *Client) Unregister(ctx context.Context, uuid string) error {
	return c.do(ctx, http.MethodDelete, pathPods+"/"+uuid, nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://metadata-service"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w (nothing listens on %s): %w", errNotRunning, c.socket, errdefs.ErrNotFound)
		}
		return fmt.Errorf("metadata service: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("metadata service: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("metadata service: %s: %w", strings.TrimSpace(string(data)), errdefs.ErrNotFound)
	case resp.StatusCode >= 300:
		return fmt.Errorf("metadata service: %s: %s: %w", resp.Status, strings.TrimSpace(firstLine(data)), errdefs.ErrInvalid)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("metadata service: bad answer: %w", errdefs.ErrInvalid)
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}
