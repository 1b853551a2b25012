package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The control protocol between the short-lived commands that change a
// mutable pod and the pod's supervisor, over its control socket
// (Stage1ControlSocket): one request per connection, a JSON object on one
// line, answered by one JSON object on one line. A request may carry open
// descriptors (SCM_RIGHTS) that its Files field names, in order. Every
// message carries the protocol version; a side that gets a version it
// does not speak answers or fails with ControlErrVersion. See
// Documentation/design.md, "The control channel".
const ControlProtocolVersion = 1

// MaxControlMessage bounds a request or response line.
const MaxControlMessage = 1 << 20

// A ControlOp is what a request asks for: a closed set.
type ControlOp string

const (
	// OpState asks for every app the supervisor knows and its state.
	OpState ControlOp = "state"
	// OpAdd makes an app known in the created state; the supervisor reads
	// its launch spec from the pod directory. Files may name "stdout" and
	// "stderr": log files the app's output is copied to.
	OpAdd ControlOp = "add"
	// OpStart starts a created or exited app and answers once its process
	// runs (or failed to start).
	OpStart ControlOp = "start"
	// OpStop stops a running app and answers once it has exited and its
	// status is recorded; an app that is not running is left as it is.
	OpStop ControlOp = "stop"
	// OpRemove forgets an app that is not running.
	OpRemove ControlOp = "remove"
)

// ControlRequest is one request.
type ControlRequest struct {
	Version int       `json:"version"`
	Op      ControlOp `json:"op"`
	App     string    `json:"app,omitempty"`
	// Files names the descriptors sent with the request, in order.
	Files []string `json:"files,omitempty"`
}

// Error kinds of a ControlResponse, so that callers can tell them apart
// without parsing messages.
const (
	ControlErrInvalid  = "invalid"   // a malformed or unknown request
	ControlErrVersion  = "version"   // a protocol version the supervisor does not speak
	ControlErrNotFound = "not-found" // no such app
	ControlErrExists   = "exists"    // an app of that name is there already
	ControlErrBusy     = "busy"      // the app is running, or the pod is stopping
	ControlErrFailed   = "failed"    // the supervisor tried and failed
)

// ControlResponse is the answer to one request.
type ControlResponse struct {
	Version int `json:"version"`
	// Error is empty on success; ErrorKind classifies it.
	Error     string            `json:"error,omitempty"`
	ErrorKind string            `json:"errorKind,omitempty"`
	Apps      []ControlAppState `json:"apps,omitempty"`
}

// App states as the supervisor and stage0 name them.
const (
	AppCreated = "created"
	AppRunning = "running"
	AppExited  = "exited"
)

// ControlAppState is one app as the supervisor sees it.
type ControlAppState struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Pid       int       `json:"pid,omitempty"`
	ExitCode  *int      `json:"exitCode,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	ExitedAt  time.Time `json:"exitedAt,omitzero"`
}

// ControlError is a response's error, on the client side.
type ControlError struct {
	Kind, Message string
}

func (e *ControlError) Error() string { return e.Message }

// Err returns the response's error, or nil.
func (r *ControlResponse) Err() error {
	if r.Error == "" && r.ErrorKind == "" {
		return nil
	}
	return &ControlError{Kind: r.ErrorKind, Message: r.Error}
}

// IsControlError reports whether err is a ControlError of the kind.
func IsControlError(err error, kind string) bool {
	var ce *ControlError
	return errors.As(err, &ce) && ce.Kind == kind
}

// DecodeControlRequest reads and checks one request line.
func DecodeControlRequest(line []byte) (*ControlRequest, *ControlResponse) {
	var req ControlRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, ErrorResponse(ControlErrInvalid, fmt.Sprintf("malformed request: %v", err))
	}
	if req.Version != ControlProtocolVersion {
		return nil, ErrorResponse(ControlErrVersion, fmt.Sprintf("control protocol version %d is not supported; this supervisor speaks version %d", req.Version, ControlProtocolVersion))
	}
	switch req.Op {
	case OpState:
	case OpAdd, OpStart, OpStop, OpRemove:
		if req.App == "" {
			return nil, ErrorResponse(ControlErrInvalid, fmt.Sprintf("%s: no app named", req.Op))
		}
	default:
		return nil, ErrorResponse(ControlErrInvalid, fmt.Sprintf("unknown operation %q", req.Op))
	}
	for _, f := range req.Files {
		if f != "stdout" && f != "stderr" {
			return nil, ErrorResponse(ControlErrInvalid, fmt.Sprintf("unknown file %q", f))
		}
	}
	return &req, nil
}

// ErrorResponse is a failed response.
func ErrorResponse(kind, msg string) *ControlResponse {
	return &ControlResponse{Version: ControlProtocolVersion, Error: msg, ErrorKind: kind}
}
