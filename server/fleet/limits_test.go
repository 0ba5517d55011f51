package fleet

import (
	"errors"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/store"
)

// A command over the limit a device declared is refused as invalid input (422 on params),
// naming the limit; a device that declared none takes what the protocol allows.
func TestCheckCommandFits(t *testing.T) {
	small := store.Device{ID: "d1", Metadata: store.DeviceMetadata{LimitCommandBytes: 4608, LimitConfigBytes: 4096}}
	if err := CheckCommandFits(small, make([]byte, 4608)); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	err := CheckCommandFits(small, make([]byte, 4609))
	var inv *store.InvalidError
	if !errors.As(err, &inv) || !strings.Contains(inv.Fields["params"], "at most 4608 bytes") {
		t.Errorf("over the limit: %v", err)
	}
	undeclared := store.Device{ID: "d2"}
	if err := CheckCommandFits(undeclared, make([]byte, 16384)); err != nil {
		t.Errorf("no limits declared, 16 KiB: %v", err)
	}
	if err := CheckCommandFits(undeclared, make([]byte, 16385)); err == nil {
		t.Error("no limits declared, over 16 KiB: accepted")
	}
}
