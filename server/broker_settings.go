package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/broker/bridge"
	"github.com/espadmin/espadmin/broker/tenantbus"
	"github.com/espadmin/espadmin/store"
)

const (
	auditBrokerUpdate = "settings.broker"
	// brokerTestTimeout bounds the "test connection" action; the bridge's own connect
	// timeout (10 s) fits inside it.
	brokerTestTimeout = 20 * time.Second
	// brokerApplyTimeout bounds restarting a tenant's bridge after a save.
	brokerApplyTimeout = 10 * time.Second
)

// brokerSettingsRequest replaces a tenant's broker settings.
type brokerSettingsRequest struct {
	Mode      string  `json:"mode" doc:"builtin (the server's own broker, the default) or external (the tenant's broker)"`
	URL       string  `json:"url,omitempty" doc:"tcp://host:port, ssl://host:port, ws://host[:port]/path or wss://host[:port]/path; required for external"`
	Username  string  `json:"username,omitempty"`
	Password  *string `json:"password,omitempty" doc:"write-only; absent keeps the saved one, \"\" removes it"`
	CACertPEM string  `json:"ca_cert_pem,omitempty" doc:"PEM CA certificate(s) trusted for ssl:// and wss://; empty trusts the system's roots"`
	TopicRoot string  `json:"topic_root,omitempty" doc:"root of the device topics; empty means espadmin"`
	ClientID  string  `json:"client_id,omitempty" doc:"the server's MQTT client ID on that broker; empty means espadmin-{tenant ID}"`
	Version   *int64  `json:"version" doc:"the version read with GET (0 before the first save); a stale one is 409"`
}

// brokerSettingsResponse reads the settings back; the password never leaves the server.
type brokerSettingsResponse struct {
	Mode        string    `json:"mode"`
	URL         string    `json:"url,omitempty"`
	Username    string    `json:"username,omitempty"`
	PasswordSet bool      `json:"password_set"`
	CACertPEM   string    `json:"ca_cert_pem,omitempty"`
	TopicRoot   string    `json:"topic_root,omitempty"`
	ClientID    string    `json:"client_id,omitempty"`
	Version     int64     `json:"version"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// brokerTestRequest is the "test connection" action: the settings to try, or none to try
// the saved ones.
type brokerTestRequest struct {
	URL       string  `json:"url,omitempty" doc:"empty tests the saved settings"`
	Username  string  `json:"username,omitempty"`
	Password  *string `json:"password,omitempty" doc:"absent uses the saved password"`
	CACertPEM string  `json:"ca_cert_pem,omitempty"`
	TopicRoot string  `json:"topic_root,omitempty"`
	ClientID  string  `json:"client_id,omitempty"`
}

// brokerTestResponse is the classified outcome of a connection test.
type brokerTestResponse struct {
	OK        bool   `json:"ok"`
	ErrorKind string `json:"error_kind,omitempty" doc:"unreachable, not_authorized, tls, refused, dropped or timeout"`
	Message   string `json:"message,omitempty"`
}

// brokerStateResponse is the live connection of this replica to the tenant's broker.
type brokerStateResponse struct {
	Mode      string    `json:"mode"`
	Status    string    `json:"status,omitempty" doc:"connecting, connected, disconnected or failed (a setting needs fixing; retried with backoff); absent for builtin"`
	LastError string    `json:"last_error,omitempty"`
	ErrorKind string    `json:"error_kind,omitempty"`
	Since     time.Time `json:"since,omitzero"`
}

// brokerSettingsOf is the wire form of stored settings.
func brokerSettingsOf(st store.TenantSettings) brokerSettingsResponse {
	mode := string(st.Broker.Mode)
	if mode == "" {
		mode = string(store.BrokerBuiltin)
	}
	return brokerSettingsResponse{
		Mode: mode, URL: st.Broker.URL, Username: st.Broker.Username, PasswordSet: len(st.Broker.PasswordSealed) > 0,
		CACertPEM: st.Broker.CACertPEM, TopicRoot: st.Broker.TopicRoot, ClientID: st.Broker.ClientID,
		Version: st.Version, UpdatedAt: st.UpdatedAt,
	}
}

// tenantSettings returns the saved settings or the defaults.
func (s *Server) tenantSettings(ctx context.Context, tenantID string) (store.TenantSettings, error) {
	st, err := s.deps.Store.TenantSettings(ctx, tenantID)
	if errors.Is(err, store.ErrNotFound) {
		return store.TenantSettings{TenantID: tenantID, Broker: store.BrokerSettings{Mode: store.BrokerBuiltin}}, nil
	}
	return st, err
}

// getBrokerSettings serves GET /api/v1/tenants/:tenant/settings/broker.
func (s *Server) getBrokerSettings(c echo.Context) error {
	st, err := s.tenantSettings(c.Request().Context(), tenantFrom(c).Tenant.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, brokerSettingsOf(st))
}

// putBrokerSettings serves PUT /api/v1/tenants/:tenant/settings/broker: validate, seal the
// password, save with the version check, audit without the password, apply.
func (s *Server) putBrokerSettings(c echo.Context) error {
	var req brokerSettingsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	if req.Version == nil {
		fields["version"] = "is required (read it with GET; 0 before the first save)"
	}
	mode := store.BrokerMode(req.Mode)
	if mode != store.BrokerBuiltin && mode != store.BrokerExternal {
		fields["mode"] = "must be builtin or external"
	}
	if len(fields) > 0 {
		return &store.InvalidError{Fields: fields}
	}
	if s.deps.Keyring == nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "secrets cannot be sealed on this server"}
	}
	tc := tenantFrom(c)
	ctx := c.Request().Context()
	st, err := s.tenantSettings(ctx, tc.Tenant.ID)
	if err != nil {
		return err
	}
	if *req.Version != st.Version {
		return &Error{Status: http.StatusConflict, Message: "the settings changed meanwhile; read them again"}
	}
	ad := tenantbus.PasswordAD(tc.Tenant.ID)
	password := ""
	if req.Password != nil {
		password = *req.Password
	} else if len(st.Broker.PasswordSealed) > 0 {
		p, err := s.deps.Keyring.Open(st.Broker.PasswordSealed, ad)
		if err != nil {
			return err
		}
		password = string(p)
	}
	// Validate whenever a URL is given, so builtin mode can keep tested settings for later.
	if mode == store.BrokerExternal || req.URL != "" {
		err := bridge.Validate(bridge.Config{URL: req.URL, Username: req.Username, Password: password,
			CACertPEM: req.CACertPEM, TopicRoot: req.TopicRoot, ClientID: req.ClientID, AllowPrivate: s.deps.BrokerAllowPrivate})
		if err != nil {
			return err
		}
	}
	next := st.Broker
	next.Mode, next.URL, next.Username = mode, req.URL, req.Username
	next.CACertPEM, next.TopicRoot, next.ClientID = req.CACertPEM, req.TopicRoot, req.ClientID
	if req.Password != nil {
		next.PasswordSealed = nil
		if *req.Password != "" {
			sealed, err := s.deps.Keyring.Seal([]byte(*req.Password), ad)
			if err != nil {
				return err
			}
			next.PasswordSealed = sealed
		}
	}
	st.Broker = next
	st.Version = *req.Version
	st.UpdatedBy = tc.Principal.UserID
	err = s.deps.Store.PutTenantSettings(ctx, &st)
	if errors.Is(err, store.ErrConflict) {
		return &Error{Status: http.StatusConflict, Message: "the settings changed meanwhile; read them again"}
	}
	if err != nil {
		return err
	}
	s.audit(c, auditBrokerUpdate, "tenant", tc.Tenant.ID, map[string]any{
		"mode": string(next.Mode), "url": next.URL, "username": next.Username, "topic_root": next.TopicRoot,
		"client_id": next.ClientID, "ca_cert_set": next.CACertPEM != "", "auth_changed": req.Password != nil,
	})
	if s.deps.Brokers != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), brokerApplyTimeout)
		defer cancel()
		if err := s.deps.Brokers.Apply(actx, tc.Tenant.ID, next); err != nil {
			s.log.Warn("apply tenant broker settings", "tenant_id", tc.Tenant.ID, "error", err)
		}
	}
	return c.JSON(http.StatusOK, brokerSettingsOf(st))
}

// testBrokerSettings serves POST /api/v1/tenants/:tenant/settings/broker/test: connect once
// with the submitted settings (or the saved ones), subscribe and publish a probe, disconnect.
// A failed test is a 200 with ok false and the classified reason; invalid settings are 422,
// and so is a broker on a private, loopback or link-local address unless the operator allows
// them (bridge.Config.AllowPrivate), so the action cannot probe the server's own network.
func (s *Server) testBrokerSettings(c echo.Context) error {
	var req brokerTestRequest
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	tc := tenantFrom(c)
	ctx := c.Request().Context()
	st, err := s.tenantSettings(ctx, tc.Tenant.ID)
	if err != nil {
		return err
	}
	cfg := bridge.Config{URL: req.URL, Username: req.Username, CACertPEM: req.CACertPEM, TopicRoot: req.TopicRoot, ClientID: req.ClientID}
	if req.URL == "" {
		b := st.Broker
		if b.URL == "" {
			return store.Invalid("url", "is required: no broker URL is saved")
		}
		cfg = bridge.Config{URL: b.URL, Username: b.Username, CACertPEM: b.CACertPEM, TopicRoot: b.TopicRoot, ClientID: b.ClientID}
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "espadmin-" + tc.Tenant.ID
	}
	cfg.AllowPrivate = s.deps.BrokerAllowPrivate
	if req.Password != nil {
		cfg.Password = *req.Password
	} else if len(st.Broker.PasswordSealed) > 0 {
		if s.deps.Keyring == nil {
			return &Error{Status: http.StatusServiceUnavailable, Message: "secrets cannot be opened on this server"}
		}
		p, err := s.deps.Keyring.Open(st.Broker.PasswordSealed, tenantbus.PasswordAD(tc.Tenant.ID))
		if err != nil {
			return err
		}
		cfg.Password = string(p)
	}
	if err := bridge.Validate(cfg); err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, brokerTestTimeout)
	defer cancel()
	err = bridge.Test(tctx, cfg)
	if errors.Is(err, store.ErrInvalid) {
		return err // field errors: 422 like a save
	}
	if err != nil {
		s.log.Info("broker connection test failed", "tenant_id", tc.Tenant.ID, "error_kind", bridgeErrorKind(err), "error", err)
		return c.JSON(http.StatusOK, brokerTestResponse{ErrorKind: bridgeErrorKind(err), Message: err.Error()})
	}
	return c.JSON(http.StatusOK, brokerTestResponse{OK: true})
}

// brokerState serves GET /api/v1/tenants/:tenant/settings/broker/state: this replica's
// connection to the tenant's broker.
func (s *Server) brokerState(c echo.Context) error {
	tc := tenantFrom(c)
	st, err := s.tenantSettings(c.Request().Context(), tc.Tenant.ID)
	if err != nil {
		return err
	}
	out := brokerStateResponse{Mode: brokerSettingsOf(st).Mode}
	if st.Broker.Mode != store.BrokerExternal {
		return c.JSON(http.StatusOK, out)
	}
	if s.deps.Brokers == nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "tenant brokers are not available on this server"}
	}
	state, ok := s.deps.Brokers.State(tc.Tenant.ID)
	if !ok {
		// Saved on another replica moments ago: this one starts the bridge at its next refresh.
		out.Status = string(bridge.StatusConnecting)
		return c.JSON(http.StatusOK, out)
	}
	out.Status, out.LastError, out.Since = string(state.Status), state.LastError, state.Since
	out.ErrorKind = bridgeErrorKind(state.Err)
	return c.JSON(http.StatusOK, out)
}

// bridgeErrorKind is the short name of a bridge error's class, for the UI to say what to fix.
func bridgeErrorKind(err error) string {
	for _, k := range []struct {
		err  error
		kind string
	}{
		{bridge.ErrInvalidConfig, "invalid_config"},
		{bridge.ErrUnreachable, "unreachable"},
		{bridge.ErrNotAuthorized, "not_authorized"},
		{bridge.ErrTLS, "tls"},
		{bridge.ErrRefused, "refused"},
		{bridge.ErrTimeout, "timeout"},
		{bridge.ErrDropped, "dropped"},
	} {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	if err != nil {
		return "other"
	}
	return ""
}
