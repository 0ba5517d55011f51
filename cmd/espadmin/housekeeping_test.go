package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
	"github.com/espadmin/espadmin/server/account"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/sqlstore"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// countingSweeper counts its sweeps and fails each with err.
type countingSweeper struct {
	n   atomic.Int32
	err error
}

func (s *countingSweeper) Sweep(context.Context) (account.SweepStats, error) {
	s.n.Add(1)
	return account.SweepStats{Sessions: 2, LoginLimits: 3}, s.err
}

func TestRunSweeps(t *testing.T) {
	t.Parallel()
	t.Run("at start, then every interval", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		s := &countingSweeper{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- runSweeps(ctx, s, time.Millisecond, slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})))
		}()
		poll.Until(t, 10*time.Second, "three sweeps", func() bool { return s.n.Load() >= 3 })
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runSweeps after cancel: %v", err)
		}
		if !strings.Contains(logs.String(), `"sessions":2,"login_limits":3`) {
			t.Errorf("the counts are not logged: %s", logs.String())
		}
	})
	t.Run("errors are logged and the loop goes on", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		s := &countingSweeper{err: errors.New("database down")}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- runSweeps(ctx, s, time.Millisecond, slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil)))
		}()
		poll.Until(t, 10*time.Second, "two sweeps", func() bool { return s.n.Load() >= 2 })
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runSweeps after cancel: %v", err)
		}
		if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "database down") {
			t.Errorf("the error is not logged as a warning: %s", logs.String())
		}
	})
}

// TestServeSweepsAtStart runs serve on a database holding an expired session, a stale login
// limit, a resolved alert past the retention and an error report past the retention with its
// core dump: all are gone soon after the start, and the sweep logs its counts.
func TestServeSweepsAtStart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data")
	if err := run(ctx, []string{"migrate", "--data-dir", dir, "--log-level", "error"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.Open(ctx, config.DefaultDatabaseURL(dir), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := store.User{Email: "ada@example.com"}
	if err := st.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-48 * time.Hour)
	sess := store.Session{
		TokenHash: account.HashSecret("expired"), UserID: u.ID, CreatedAt: past, LastSeenAt: past,
		IdleExpiresAt: past.Add(time.Hour), ExpiresAt: past.Add(24 * time.Hour),
	}
	if err := st.CreateSession(ctx, &sess); err != nil {
		t.Fatal(err)
	}
	const staleKey = "login-account:0000"
	if _, err := st.AddLoginFailure(ctx, staleKey, past, past.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The alert history past alerts.retention (90 days by default): a resolved alert goes, a
	// firing one of the same age stays.
	tn := store.Tenant{Slug: "acme", Name: "Acme"}
	if err := st.CreateTenant(ctx, &tn); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-100 * 24 * time.Hour)
	oldAlert := func(state store.AlertState) store.Alert {
		a := store.Alert{TenantID: tn.ID, RuleID: "r", RuleName: "r", Kind: "rollout", State: state, Subjects: []string{},
			FiredAt: old, UpdatedAt: old}
		if err := st.CreateAlert(ctx, &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	resolved, firing := oldAlert(store.AlertResolved), oldAlert(store.AlertFiring)
	// An error report past errors.retention (90 days by default) goes with its core dump in
	// the firmware storage (<data-dir>/blobs); a recent one of the same group stays.
	errorReport := func(age time.Duration) (store.ErrorReport, string) {
		r := store.ErrorReport{TenantID: tn.ID, DeviceID: "d", Fingerprint: "fp", Type: "panic", Message: "m", Severity: "error",
			FirmwareVersion: "v1", CoreDump: `{"size":4}`, ReceivedAt: time.Now().Add(-age)}
		if _, err := st.RecordError(ctx, &r); err != nil {
			t.Fatal(err)
		}
		core := filepath.Join(dir, "blobs", filepath.FromSlash(devicerrors.CoreDumpBlobKey(tn.ID, r.ID)))
		if err := os.MkdirAll(filepath.Dir(core), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(core, []byte("core"), 0o644); err != nil {
			t.Fatal(err)
		}
		return r, core
	}
	oldReport, oldCore := errorReport(100 * 24 * time.Hour)
	recentReport, recentCore := errorReport(time.Hour)

	logs := &syncWriter{w: &bytes.Buffer{}}
	serveCtx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- run(serveCtx, []string{"serve", "--data-dir", dir, "--http-addr", freePort(t), "--mqtt-addr", "127.0.0.1:0",
			"--log-level", "debug", "--log-format", "json"}, io.Discard, logs)
	}()
	// The rows go first, then the sweep logs its counts: wait for both before stopping.
	swept := func() bool {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "swept expired sessions and login limits" &&
				m["sessions"] == 1.0 && m["login_limits"] == 1.0 {
				return true
			}
		}
		return false
	}
	poll.Until(t, 20*time.Second, "the expired session and the stale limit to be swept and the counts logged", func() bool {
		_, serr := st.SessionByTokenHash(ctx, sess.TokenHash)
		_, lerr := st.LoginLimit(ctx, staleKey)
		_, aerr := st.Alert(ctx, tn.ID, resolved.ID)
		reports, rerr := st.ListErrorReports(ctx, tn.ID, "", "", store.ListOptions{})
		_, cerr := os.Stat(oldCore)
		return errors.Is(serr, store.ErrNotFound) && errors.Is(lerr, store.ErrNotFound) && errors.Is(aerr, store.ErrNotFound) &&
			rerr == nil && len(reports.Items) == 1 && errors.Is(cerr, fs.ErrNotExist) && swept()
	})
	if reports, err := st.ListErrorReports(ctx, tn.ID, "", "", store.ListOptions{}); err != nil || len(reports.Items) != 1 || reports.Items[0].ID != recentReport.ID {
		t.Errorf("error reports after the sweep: %+v, %v; want only the recent one", reports.Items, err)
	}
	if _, err := os.Stat(recentCore); err != nil {
		t.Errorf("the recent report's core dump: %v, want kept", err)
	}
	if g, err := st.ErrorGroup(ctx, tn.ID, oldReport.GroupID); err != nil || g.Count != 2 {
		t.Errorf("the error group after the sweep: %+v, %v; want kept with both reports counted", g, err)
	}
	if _, err := st.Alert(ctx, tn.ID, firing.ID); err != nil {
		t.Errorf("a firing alert past the retention: %v, want kept", err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
	found := swept()
	if !found {
		t.Errorf("no debug line with the sweep's counts:\n%s", logs.String())
	}
}
