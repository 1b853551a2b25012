// Package errdefs holds the few classes of error that orbit's packages
// return. Callers wrap them with context (fmt.Errorf("image %s: %w", id,
// errdefs.ErrNotFound)) and test them with errors.Is.
package errdefs

import "errors"

var (
	// ErrNotFound: the image, pod, key or file asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous: a prefix or name matches more than one thing.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrAlreadyExists: the thing to create exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalid: input (a manifest, a tar entry, a flag value) is malformed
	// or unsafe.
	ErrInvalid = errors.New("invalid")
	// ErrUntrusted: an image's signature is missing, wrong, or made by a key
	// that is not trusted for the image's name.
	ErrUntrusted = errors.New("untrusted")
	// ErrBusy: the object is locked or in use by another process.
	ErrBusy = errors.New("in use")
)
