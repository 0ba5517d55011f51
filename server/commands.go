package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
)

// auditCommandSend is recorded once per send request, with the number of devices reached.
const auditCommandSend = "command.send"

type commandTarget struct {
	DeviceIDs []string           `json:"device_ids,omitempty" doc:"1 to 1000 device IDs"`
	Tag       string             `json:"tag,omitempty" doc:"every device with this tag"`
	ProjectID string             `json:"project_id,omitempty" doc:"every device linked to this project"`
	Filter    *deviceFilterInput `json:"filter,omitempty" doc:"every device the device list shows with these filters (same names as its query); {} is every device of the tenant"`
}

// target converts the wire target; a bad filter is a 422 on target.filter.<field>.
func (t commandTarget) target() (fleet.Target, error) {
	out := fleet.Target{DeviceIDs: t.DeviceIDs, Tag: t.Tag, ProjectID: t.ProjectID}
	if t.Filter != nil {
		f, err := t.Filter.filter()
		if err != nil {
			var inv *store.InvalidError
			if errors.As(err, &inv) {
				fields := map[string]string{}
				for k, v := range inv.Fields {
					fields["target.filter."+k] = v
				}
				return out, &store.InvalidError{Fields: fields}
			}
			return out, err
		}
		out.Filter = &f
	}
	return out, nil
}

type sendCommandRequest struct {
	Name       string         `json:"name" enum:"restart,debug"`
	Params     map[string]any `json:"params,omitempty" doc:"restart: {reason?}; debug: {enabled, level?, duration_s?} (docs/protocol.md §4)"`
	Target     commandTarget  `json:"target" doc:"exactly one of device_ids, tag, project_id, filter"`
	TTLSeconds int            `json:"ttl_seconds,omitempty" doc:"how long the command waits for an offline device: 10 to 2592000 (default 86400)"`
}

// commandResponse is one command and its state. delivered means the broker accepted the
// command for a device that was connected (embedded broker: queued for the device's session;
// external broker: PUBACK); succeeded and failed follow the device's ack; superseded is a
// config command replaced by a newer config version before the device applied it.
type commandResponse struct {
	ID          string         `json:"id"`
	DeviceID    string         `json:"device_id"`
	Name        string         `json:"name"`
	Params      map[string]any `json:"params"`
	State       string         `json:"state" enum:"queued,delivered,succeeded,failed,expired,superseded"`
	Ack         map[string]any `json:"ack,omitempty" doc:"the device's acknowledgement as received"`
	Error       string         `json:"error,omitempty" doc:"ack result and message when failed"`
	CreatedBy   string         `json:"created_by,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	ExpiresAt   time.Time      `json:"expires_at"`
	DeliveredAt *time.Time     `json:"delivered_at,omitempty"`
	CompletedAt *time.Time     `json:"completed_at,omitempty"`
	UpdatedAt   time.Time      `json:"updated_at"`
}

type commandListResponse struct {
	Items []commandResponse `json:"items"`
}

// sentCommand is a command just sent, with whether its device can receive it now.
type sentCommand struct {
	commandResponse
	DeviceOnline         bool `json:"device_online" doc:"whether the device was connected when the command was sent"`
	QueuedUntilConnected bool `json:"queued_until_connected" doc:"the device is offline: the command waits until it connects (or expires at expires_at)"`
}

type sentCommandsResponse struct {
	Items []sentCommand `json:"items"`
	// Offline counts the commands waiting for their device to connect, for a message such as
	// "queued until the device connects".
	Offline int `json:"offline" doc:"how many of the commands wait for their device to connect"`
}

// commandQuery documents the filter of a device's command list.
type commandQuery struct {
	State string `query:"state" doc:"queued, delivered, succeeded, failed, expired or superseded"`
	pageQuery
}

func commandOf(c store.Command) commandResponse {
	r := commandResponse{
		ID: c.ID, DeviceID: c.DeviceID, Name: c.Name, State: string(c.State), Error: c.Error,
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt,
		DeliveredAt: c.DeliveredAt, CompletedAt: c.CompletedAt, UpdatedAt: c.UpdatedAt,
		Params: map[string]any{},
	}
	var payload struct {
		Params map[string]any `json:"params"`
	}
	if json.Unmarshal([]byte(c.Payload), &payload) == nil && payload.Params != nil {
		r.Params = payload.Params
	}
	if c.Result != "" {
		_ = json.Unmarshal([]byte(c.Result), &r.Ack)
	}
	return r
}

// sendCommand serves POST /api/v1/tenants/:tenant/commands: one command per target device,
// stored queued and published at once to the devices that are connected.
func (s *Server) sendCommand(c echo.Context) error {
	if err := s.fleetReady(); err != nil {
		return err
	}
	tc := tenantFrom(c)
	var req sendCommandRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.TTLSeconds < 0 {
		return store.Invalid("ttl_seconds", "must not be negative")
	}
	var params json.RawMessage
	if req.Params != nil {
		b, err := json.Marshal(req.Params)
		if err != nil {
			return store.Invalid("params", "must be an object")
		}
		params = b
	}
	createdBy := tc.Principal.UserID
	if createdBy == "" {
		createdBy = "token:" + tc.Principal.TokenID
	}
	target, err := req.Target.target()
	if err != nil {
		return err
	}
	cmds, err := s.deps.Commands.Send(c.Request().Context(), tc.Tenant.ID, fleet.SendRequest{
		Name:   req.Name,
		Params: params,
		Target: target,
		TTL:    time.Duration(req.TTLSeconds) * time.Second, CreatedBy: createdBy,
	})
	if err != nil {
		return err
	}
	ids := make([]string, len(cmds))
	out := sentCommandsResponse{Items: make([]sentCommand, len(cmds))}
	for i, cmd := range cmds {
		ids[i] = cmd.DeviceID
		out.Items[i] = sentCommand{commandResponse: commandOf(cmd)}
		d, err := s.deps.Store.Device(c.Request().Context(), tc.Tenant.ID, cmd.DeviceID)
		if err != nil {
			return err
		}
		out.Items[i].DeviceOnline = d.Presence.Online
		if !d.Presence.Online && cmd.State == store.CommandQueued {
			out.Items[i].QueuedUntilConnected = true
			out.Offline++
		}
	}
	details := map[string]any{"name": req.Name, "devices": len(cmds)}
	switch {
	case req.Target.Tag != "":
		details["target_tag"] = req.Target.Tag
	case req.Target.ProjectID != "":
		details["target_project_id"] = req.Target.ProjectID
	case req.Target.Filter != nil:
		details["target_filter"] = req.Target.Filter
	default:
		details["target_device_ids"] = ids
	}
	resourceID := ""
	if len(cmds) == 1 {
		resourceID = cmds[0].ID
	}
	s.audit(c, auditCommandSend, "command", resourceID, details)
	return c.JSON(http.StatusAccepted, out)
}

// listDeviceCommands serves GET /api/v1/tenants/:tenant/devices/:device/commands, newest
// first.
func (s *Server) listDeviceCommands(c echo.Context) error {
	d, err := s.device(c)
	if err != nil {
		return err
	}
	opts, err := parsePage(c)
	if err != nil {
		return err
	}
	opts.Desc = true
	f := store.CommandFilter{DeviceID: d.ID}
	switch st := store.CommandState(c.QueryParam("state")); st {
	case "":
	case store.CommandQueued, store.CommandDelivered, store.CommandSucceeded, store.CommandFailed, store.CommandExpired, store.CommandSuperseded:
		f.State = st
	default:
		return store.Invalid("state", "must be queued, delivered, succeeded, failed, expired or superseded")
	}
	page, err := s.deps.Store.ListCommands(c.Request().Context(), d.TenantID, f, opts)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(page, commandOf))
}

// getDeviceCommand serves GET /api/v1/tenants/:tenant/devices/:device/commands/:command.
func (s *Server) getDeviceCommand(c echo.Context) error {
	d, err := s.device(c)
	if err != nil {
		return err
	}
	notFound := &Error{Status: http.StatusNotFound, Message: "command not found"}
	id := c.Param("command")
	if !protocol.ValidCommandID(id) {
		return notFound
	}
	cmd, err := s.deps.Store.Command(c.Request().Context(), d.TenantID, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && cmd.DeviceID != d.ID {
		return notFound
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, commandOf(cmd))
}
