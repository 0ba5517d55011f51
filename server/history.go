package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/store"
)

// historyQuery documents the history routes' window.
type historyQuery struct {
	Hours string `query:"hours" doc:"how far back, 1 to 720 hours (default 24); samples are kept history.retention (30 days by default)"`
}

type deviceSampleResponse struct {
	At            time.Time `json:"at"`
	Kind          string    `json:"kind" enum:"presence,metadata" doc:"presence: online changed; metadata: the device reported rssi, free_heap and uptime_seconds"`
	Online        bool      `json:"online"`
	RSSI          int       `json:"rssi,omitempty"`
	FreeHeap      int64     `json:"free_heap,omitempty"`
	UptimeSeconds int64     `json:"uptime_seconds,omitempty"`
}

type deviceHistoryResponse struct {
	Samples []deviceSampleResponse `json:"samples" doc:"oldest first; at most the newest 5000"`
}

type fleetSampleResponse struct {
	At     time.Time `json:"at"`
	Online int64     `json:"online"`
	Total  int64     `json:"total"`
}

type fleetHistoryResponse struct {
	Samples []fleetSampleResponse `json:"samples" doc:"one every history.fleet_interval, oldest first; at most the newest 5000"`
}

// historySince reads ?hours= into the window's start.
func historySince(c echo.Context) (time.Time, error) {
	hours := 24
	if raw := c.QueryParam("hours"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 720 {
			return time.Time{}, store.Invalid("hours", "must be an integer from 1 to 720")
		}
		hours = n
	}
	return store.Now().Add(-time.Duration(hours) * time.Hour), nil
}

// deviceHistory serves GET /api/v1/tenants/:tenant/devices/:device/history.
func (s *Server) deviceHistory(c echo.Context) error {
	since, err := historySince(c)
	if err != nil {
		return err
	}
	d, err := s.device(c)
	if err != nil {
		return err
	}
	samples, err := s.deps.Store.DeviceSamples(c.Request().Context(), d.TenantID, d.ID, since, store.MaxSamples)
	if err != nil {
		return err
	}
	out := deviceHistoryResponse{Samples: make([]deviceSampleResponse, len(samples))}
	for i, sm := range samples {
		out.Samples[i] = deviceSampleResponse{At: sm.At, Kind: string(sm.Kind), Online: sm.Online, RSSI: sm.RSSI,
			FreeHeap: sm.FreeHeap, UptimeSeconds: sm.UptimeSeconds}
	}
	return c.JSON(http.StatusOK, out)
}

// fleetHistory serves GET /api/v1/tenants/:tenant/devices/stats/history.
func (s *Server) fleetHistory(c echo.Context) error {
	since, err := historySince(c)
	if err != nil {
		return err
	}
	samples, err := s.deps.Store.FleetSamples(c.Request().Context(), tenantFrom(c).Tenant.ID, since, store.MaxSamples)
	if err != nil {
		return err
	}
	out := fleetHistoryResponse{Samples: make([]fleetSampleResponse, len(samples))}
	for i, sm := range samples {
		out.Samples[i] = fleetSampleResponse{At: sm.At, Online: sm.Online, Total: sm.Total}
	}
	return c.JSON(http.StatusOK, out)
}
