package store

import (
	"errors"
	"fmt"
	"testing"
)

func TestInvalidError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("ota: create project: %w", &InvalidError{Fields: map[string]string{"name": "is required", "description": "too long"}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(Invalid("a", "b"), ErrConflict) {
		t.Error("an invalid input error matches another sentinel")
	}
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Fields["name"] != "is required" {
		t.Fatalf("errors.As: %v", inv)
	}
	if got, want := err.Error(), "ota: create project: invalid input: description: too long; name: is required"; got != want {
		t.Errorf("Error() = %q, want %q (fields in name order)", got, want)
	}
	if got := Invalid("limit", "must be 1 to 100").Fields; len(got) != 1 || got["limit"] != "must be 1 to 100" {
		t.Errorf("Invalid: %v", got)
	}
}
