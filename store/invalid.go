package store

import (
	"errors"
	"sort"
	"strings"
)

// ErrInvalid means input the caller must fix. It lives here, beside ErrNotFound and
// ErrConflict, because both the broker side and the server side report bad input and this
// package is the leaf both may import: every domain package returns an *InvalidError (for
// which errors.Is(err, ErrInvalid) holds), and the HTTP layer turns it into one response,
// 422 with the field errors, in one place.
var ErrInvalid = errors.New("invalid input")

// InvalidError reports invalid input field by field. Nothing was changed when it is
// returned.
type InvalidError struct {
	// Fields maps a field, named as the caller wrote it (a JSON name such as "name",
	// "entries[2].value" or "target.device_ids[0]"), to what is wrong with it.
	Fields map[string]string
	// Code, when set, replaces the API's generic error code "validation_failed" for a kind of
	// bad input a client may want to tell apart (an unknown command: "unknown_command").
	Code string
	// Message, when set, replaces the API's generic message "invalid input".
	Message string
}

// Invalid reports one invalid field.
func Invalid(field, reason string) *InvalidError {
	return &InvalidError{Fields: map[string]string{field: reason}}
}

// Error lists the fields in name order, so the text is stable.
func (e *InvalidError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }
