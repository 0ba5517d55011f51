package storetest

import (
	"testing"

	"github.com/espadmin/espadmin/store"
)

func testKeyCheck(t *testing.T, f *fixture) {
	runCases(t, f, []testCase{
		{"RoundTripAndWriteOnce", func(t *testing.T, f *fixture) {
			ctx := t.Context()
			name := f.name("k")
			_, err := f.s.KeyCheck(ctx, name)
			f.wantErr(t, err, store.ErrNotFound, "KeyCheck before CreateKeyCheck")
			in := store.KeyCheck{Name: name, KeyID: "0a1b2c3d", Sealed: []byte{1, 0, 255, 7}, CreatedAt: at(0)}
			want := in
			f.must(t, f.s.CreateKeyCheck(ctx, &in), "CreateKeyCheck")
			got, err := f.s.KeyCheck(ctx, name)
			f.must(t, err, "KeyCheck")
			f.equal(t, "KeyCheck after CreateKeyCheck", got, want)
			other := store.KeyCheck{Name: name, KeyID: "ffffffff", Sealed: []byte{9}}
			f.wantErr(t, f.s.CreateKeyCheck(ctx, &other), store.ErrConflict, "second CreateKeyCheck")
			got, err = f.s.KeyCheck(ctx, name)
			f.must(t, err, "KeyCheck after the refused write")
			f.equal(t, "KeyCheck after the refused write", got, want)
		}},
	})
}
