package protocol

import (
	"errors"
	"fmt"
)

// Error classes. Every error returned by a decoder or an encoder matches exactly one of them
// with errors.Is, so the ingest side can count malformed payloads per reason (Class gives the
// short name used in metrics and in the test vectors).
var (
	// ErrTooLarge: the payload exceeds the size limit of its kind; it was not parsed.
	ErrTooLarge = errors.New("protocol: payload too large")
	// ErrMalformed: not a single well-formed JSON object (syntax, trailing data, duplicate
	// keys, nesting too deep, invalid UTF-8, an unpaired surrogate escape).
	ErrMalformed = errors.New("protocol: malformed JSON")
	// ErrUnsupportedVersion: "v" is higher than Version.
	ErrUnsupportedVersion = errors.New("protocol: unsupported protocol version")
	// ErrInvalidField: a field is missing, has the wrong JSON type, or a value out of range.
	// The concrete error is a *FieldError naming the field.
	ErrInvalidField = errors.New("protocol: invalid field")
	// ErrUnknownCommand: a command's "name" is not one this version defines.
	ErrUnknownCommand = errors.New("protocol: unknown command")
	// ErrInvalidTopic: a topic does not have the shape {root}/{deviceID}/{up|down}/{kind}.
	ErrInvalidTopic = errors.New("protocol: invalid topic")
	// ErrUnknownKind: a topic is well formed but its last level is not a defined kind.
	ErrUnknownKind = errors.New("protocol: unknown message kind")
)

// FieldError tells which field of a payload is invalid and why. Field is a path such as
// "id", "params.entries[2].key" or "lines[0].level". It matches ErrInvalidField with errors.Is.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("protocol: invalid field %q: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidField) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidField }

// Class returns the short name of err's class — "too_large", "malformed",
// "unsupported_version", "invalid_field", "unknown_command", "invalid_topic", "unknown_kind" —
// or "" for nil and "other" for an error this package did not produce. Metrics label dropped
// messages with it; the test vectors' "error" field holds the same names.
func Class(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrUnsupportedVersion):
		return "unsupported_version"
	case errors.Is(err, ErrInvalidField):
		return "invalid_field"
	case errors.Is(err, ErrUnknownCommand):
		return "unknown_command"
	case errors.Is(err, ErrInvalidTopic):
		return "invalid_topic"
	case errors.Is(err, ErrUnknownKind):
		return "unknown_kind"
	}
	return "other"
}

// Field returns the field path of a *FieldError in err's chain, or "".
func Field(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}
