// Package storetest is the conformance suite every store.Store backend must pass, so SQLite,
// PostgreSQL, MariaDB and MongoDB behave the same to the server whichever one a deployment
// uses. The doc comments in package store define the semantics; each case here checks one of
// them.
//
// The suite waits for nothing: every time it needs is written explicitly, so expiry, ordering
// and "newer wins" are decided by the timestamps the cases choose, never by the wall clock.
// Timestamps are written with millisecond precision in a zone that is not UTC and must come
// back Equal and in UTC.
//
// Cases that care about list order create records with IDs from a per-store sequence (see
// idSeq): store.NewID orders IDs by millisecond only, and two IDs made in the same millisecond
// sort randomly, which would make "records added later appear at the end" flaky.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store"
)

// OpenFunc returns a fresh, migrated, empty store. The backend's test registers the cleanup
// with t.Cleanup. It is called once per aggregate group (and a few more times where a case
// needs a store of its own, for lists that are not tenant-scoped).
type OpenFunc func(t *testing.T) store.Store

// Run runs the suite against the backend that open creates.
func Run(t *testing.T, open OpenFunc) {
	t.Helper()
	if open == nil {
		t.Fatal("storetest: open is required")
	}
	var once sync.Once
	logged := func(st *testing.T) store.Store {
		st.Helper()
		s := open(st)
		once.Do(func() { t.Logf("backend %s", s.Backend()) })
		return s
	}
	groups := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"Tenant", testTenant},
		{"Account", testAccount},
		{"LoginLimit", testLoginLimit},
		{"Project", testProject},
		{"Device", testDevice},
		{"Config", testConfig},
		{"Command", testCommand},
		{"Rollout", testRollout},
		{"ErrorReport", testErrorReport},
		{"Audit", testAudit},
		{"Settings", testSettings},
		{"KeyCheck", testKeyCheck},
		{"History", testHistory},
		{"Alert", testAlert},
		{"Push", testPushAndServerSecrets},
		{"Pagination", testPagination},
		{"Isolation", testIsolation},
		{"Atomic", testAtomic},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			g.run(t, newFixture(t, logged))
		})
	}
}

// testCase is one named case of a group; cases of a group share the group's store and keep
// apart by creating their own tenants, users and IDs.
type testCase struct {
	name string
	run  func(t *testing.T, f *fixture)
}

func runCases(t *testing.T, f *fixture, cases []testCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, f) })
	}
}

// fixture is one store with the helpers the cases build their state with.
type fixture struct {
	s    store.Store
	open OpenFunc
	ids  *idSeq
}

func newFixture(t *testing.T, open OpenFunc) *fixture {
	t.Helper()
	return &fixture{s: open(t), open: open, ids: newIDSeq()}
}

// fresh returns a fixture on a new store, for cases that must see a store nobody else writes.
func (f *fixture) fresh(t *testing.T) *fixture {
	t.Helper()
	return newFixture(t, f.open)
}

// id returns a new ID, greater than every ID this fixture returned before.
func (f *fixture) id() string { return f.ids.next() }

// name returns a unique, lower-case, URL-safe name with the given prefix.
func (f *fixture) name(prefix string) string { return prefix + "-" + f.ids.next()[14:] }

// idSeq makes 26-character IDs in store.NewID's alphabet that strictly increase: a random
// prefix of store.NewID (time and random bits, so sequences of different stores differ)
// followed by a counter.
type idSeq struct {
	mu     sync.Mutex
	prefix string
	n      uint64
}

const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

func newIDSeq() *idSeq { return &idSeq{prefix: store.NewID()[:14]} }

func (q *idSeq) next() string {
	q.mu.Lock()
	q.n++
	n := q.n
	q.mu.Unlock()
	var b [12]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = idAlphabet[n%32]
		n /= 32
	}
	return q.prefix + string(b[:])
}

// zoneX is the non-UTC zone every written timestamp is expressed in, so a backend that keeps
// or returns the writer's zone, or drops the offset, is caught.
func zoneX() *time.Location { return time.FixedZone("X", 5*3600+1800) }

// at returns a timestamp with millisecond precision in zoneX, minutes after a fixed base.
func at(minutes int) time.Time {
	return time.Date(2030, 6, 15, 8, 30, 0, 0, zoneX()).
		Add(time.Duration(minutes)*time.Minute + 417*time.Millisecond)
}

func minutes(n int) time.Duration { return time.Duration(n) * time.Minute }

func ptr[T any](v T) *T { return &v }

// must fails the test on an error.
func (f *fixture) must(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %s: unexpected error: %v", f.s.Backend(), fmt.Sprintf(format, args...), err)
	}
}

// wantErr checks that err wraps target.
func (f *fixture) wantErr(t *testing.T, err, target error, format string, args ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: %s: got error %v, want %v", f.s.Backend(), fmt.Sprintf(format, args...), err, target)
	}
}

// equal compares got with want field by field (see diff) and reports every difference.
func (f *fixture) equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := diff(got, want); len(d) > 0 {
		t.Errorf("%s: %s differs:\n\t%s", f.s.Backend(), what, strings.Join(d, "\n\t"))
	}
}

// equalKeys compares two ordered lists of keys (IDs, versions).
func (f *fixture) equalKeys(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: %s:\n\tgot  %v\n\twant %v", f.s.Backend(), what, got, want)
	}
}

// sameKeys compares two lists of keys regardless of order.
func (f *fixture) sameKeys(t *testing.T, what string, got, want []string) {
	t.Helper()
	f.equalKeys(t, what, slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)))
}

func keys[T any](items []T, key func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, key(it))
	}
	return out
}

var timeType = reflect.TypeFor[time.Time]()

// diff compares got with want and returns one line per differing field, named by its path.
// Times compare with Equal and a non-zero time read back must be in UTC. A nil slice equals
// an empty one (backends may return either for "none"); a non-empty slice must match in
// order.
func diff(got, want any) []string {
	var out []string
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	if g.Type() != w.Type() {
		return []string{fmt.Sprintf("type %s, want %s", g.Type(), w.Type())}
	}
	diffValue(&out, g.Type().Name(), g, w)
	return out
}

func diffValue(out *[]string, path string, g, w reflect.Value) {
	add := func(format string, args ...any) {
		*out = append(*out, path+": "+fmt.Sprintf(format, args...))
	}
	if g.Type() == timeType {
		gt, wt := g.Interface().(time.Time), w.Interface().(time.Time)
		switch {
		case !gt.Equal(wt):
			add("got %s, want %s", fmtTime(gt), fmtTime(wt))
		case !gt.IsZero() && gt.Location() != time.UTC:
			add("got location %q (%s), want UTC", gt.Location(), gt.Format(time.RFC3339Nano))
		}
		return
	}
	switch g.Kind() {
	case reflect.Pointer:
		switch {
		case g.IsNil() && w.IsNil():
		case g.IsNil():
			add("got nil, want %s", fmtValue(w.Elem()))
		case w.IsNil():
			add("got %s, want nil", fmtValue(g.Elem()))
		default:
			diffValue(out, path, g.Elem(), w.Elem())
		}
	case reflect.Struct:
		for i := range g.NumField() {
			diffValue(out, path+"."+g.Type().Field(i).Name, g.Field(i), w.Field(i))
		}
	case reflect.Slice:
		if g.Len() == 0 && w.Len() == 0 {
			return
		}
		if g.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(g.Bytes(), w.Bytes()) {
				add("got %x, want %x", g.Bytes(), w.Bytes())
			}
			return
		}
		if g.Len() != w.Len() {
			add("got %d items %s, want %d items %s", g.Len(), fmtValue(g), w.Len(), fmtValue(w))
			return
		}
		for i := range g.Len() {
			diffValue(out, fmt.Sprintf("%s[%d]", path, i), g.Index(i), w.Index(i))
		}
	default:
		if !reflect.DeepEqual(g.Interface(), w.Interface()) {
			add("got %s, want %s", fmtValue(g), fmtValue(w))
		}
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero time"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

func fmtValue(v reflect.Value) string {
	if v.Type() == timeType {
		return fmtTime(v.Interface().(time.Time))
	}
	return fmt.Sprintf("%#v", v.Interface())
}
