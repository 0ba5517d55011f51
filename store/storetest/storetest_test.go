package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

// The suite is only as good as its comparison: these pin what diff reports.
func TestDiff(t *testing.T) {
	t.Parallel()
	base := store.Device{
		ID: "d", Tags: []string{"a", "b"}, SecretHash: []byte{1},
		Presence:  store.Presence{ChangedAt: at(1)},
		CreatedAt: at(0),
	}
	tests := []struct {
		name   string
		mutate func(d *store.Device)
		want   string // a substring of the report; empty: no difference
	}{
		{"equal", func(*store.Device) {}, ""},
		{"nil and empty bytes", func(d *store.Device) { d.KeySealed = []byte{} }, ""},
		{"field", func(d *store.Device) { d.ID = "e" }, `Device.ID: got "e", want "d"`},
		{"nested time", func(d *store.Device) { d.Presence.ChangedAt = at(2) }, "Device.Presence.ChangedAt: got"},
		{"order of a slice", func(d *store.Device) { d.Tags = []string{"b", "a"} }, "Device.Tags[0]"},
		{"bytes", func(d *store.Device) { d.SecretHash = []byte{2} }, "Device.SecretHash: got 02, want 01"},
		{"microseconds", func(d *store.Device) { d.CreatedAt = at(0).Add(time.Microsecond) }, "Device.CreatedAt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Read back in UTC against the times written in zone X.
			got := base
			got.Tags = append([]string(nil), base.Tags...)
			got.CreatedAt, got.Presence.ChangedAt = base.CreatedAt.UTC(), base.Presence.ChangedAt.UTC()
			tt.mutate(&got)
			d := strings.Join(diff(got, base), "\n")
			if tt.want == "" && d != "" || tt.want != "" && !strings.Contains(d, tt.want) {
				t.Fatalf("diff = %q, want %q", d, tt.want)
			}
		})
	}
}

func TestDiffWantsUTC(t *testing.T) {
	t.Parallel()
	d := diff(store.Tenant{CreatedAt: at(0)}, store.Tenant{CreatedAt: at(0)})
	if len(d) != 1 || !strings.Contains(d[0], `location "X"`) {
		t.Fatalf("diff of a time read back in zone X = %v, want a location report", d)
	}
	if d := diff(store.Device{Tags: []string{}}, store.Device{}); len(d) != 0 {
		t.Fatalf("diff of an empty against a nil slice = %v, want none", d)
	}
	if d := diff(store.User{LastLoginAt: ptr(at(0))}, store.User{}); len(d) != 1 || !strings.Contains(d[0], "want nil") {
		t.Fatalf("diff of a set pointer against nil = %v", d)
	}
}

func TestIDSeq(t *testing.T) {
	t.Parallel()
	q := newIDSeq()
	prev := q.next()
	for range 2000 {
		id := q.next()
		if len(id) != 26 || id <= prev || strings.ContainsAny(id, "/+#$ILOU") {
			t.Fatalf("next() = %q after %q", id, prev)
		}
		prev = id
	}
	if !at(0).Equal(at(0).Truncate(time.Millisecond)) || at(0).Location().String() != "X" {
		t.Fatalf("at(0) = %v: want millisecond precision in zone X", at(0))
	}
}
