package store

import (
	"strings"
	"testing"
	"time"
)

func TestNewIDIsOrderedAndTopicSafe(t *testing.T) {
	t.Parallel()
	prev := NewID()
	seen := map[string]bool{prev: true}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if len(id) != 26 {
			t.Fatalf("NewID() = %q: length %d, want 26", id, len(id))
		}
		if strings.ContainsAny(id, "/+#$\x00") {
			t.Fatalf("NewID() = %q holds an MQTT special character", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("NewID() went back in time: %q after %q", id, prev)
		}
		prev = id
	}
}

func TestMakePage(t *testing.T) {
	t.Parallel()
	id := func(s string) string { return s }
	tests := []struct {
		name  string
		items []string
		limit int
		want  []string
		next  string
	}{
		{"empty", nil, 2, []string{}, ""},
		{"short", []string{"a"}, 2, []string{"a"}, ""},
		{"exact", []string{"a", "b"}, 2, []string{"a", "b"}, ""},
		{"more", []string{"a", "b", "c"}, 2, []string{"a", "b"}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := MakePage(tt.items, tt.limit, id)
			if strings.Join(p.Items, ",") != strings.Join(tt.want, ",") || p.Items == nil || p.NextCursor != tt.next {
				t.Fatalf("MakePage = %#v, want items %v next %q", p, tt.want, tt.next)
			}
		})
	}
}

func TestPageSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[int]int{0: DefaultPageSize, -1: DefaultPageSize, 7: 7, MaxPageSize + 1: MaxPageSize} {
		if got := (ListOptions{Limit: in}).PageSize(); got != want {
			t.Errorf("PageSize(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestTimestamp(t *testing.T) {
	t.Parallel()
	loc := time.FixedZone("x", 3600)
	in := time.Date(2026, 1, 2, 3, 4, 5, 123456789, loc)
	got := Timestamp(in)
	if got.Location() != time.UTC || got.Nanosecond() != 123000000 || !got.Equal(in.Truncate(time.Millisecond)) {
		t.Fatalf("Timestamp(%v) = %v", in, got)
	}
	if !Timestamp(time.Time{}).IsZero() {
		t.Fatal("Timestamp(zero) is not zero")
	}
}

func TestPrepareCreate(t *testing.T) {
	t.Parallel()
	var id string
	var created, updated time.Time
	PrepareCreate(&id, &created, &updated)
	if id == "" || created.IsZero() || !updated.Equal(created) {
		t.Fatalf("PrepareCreate left id=%q created=%v updated=%v", id, created, updated)
	}
	keep := "given"
	PrepareCreate(&keep, &created, nil)
	if keep != "given" {
		t.Fatalf("PrepareCreate replaced a given ID: %q", keep)
	}
}

func TestRoleValid(t *testing.T) {
	t.Parallel()
	for _, r := range []Role{RoleOwner, RoleAdmin, RoleDeveloper, RoleViewer} {
		if !r.Valid() {
			t.Errorf("%q not valid", r)
		}
	}
	if Role("root").Valid() {
		t.Error(`"root" valid`)
	}
}
