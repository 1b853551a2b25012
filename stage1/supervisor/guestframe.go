package supervisor

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// WriteGuestFrame writes one frame of the enter port.
func WriteGuestFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > GuestMaxFrame {
		return fmt.Errorf("frame of %d bytes: %w", len(payload), errdefs.ErrInvalid)
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadGuestFrame reads one frame of the enter port; a frame longer than
// GuestMaxFrame is an error.
func ReadGuestFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > GuestMaxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes: %w", n, errdefs.ErrInvalid)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return hdr[0], payload, nil
}
