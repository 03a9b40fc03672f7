package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// DriverStatusStore records a deploy system's report on a delivery it
// accepted; *store.Store implements it. The run store of a server with an
// engine is asked for it, so the endpoint needs no wiring of its own.
type DriverStatusStore interface {
	ReportDelivery(ctx context.Context, r store.DeliveryReport) (store.DriverDelivery, error)
}

// driverStatusRoute is where receivers of the webhook driver report
// completion.
const driverStatusRoute = "/api/v1/runs/:id/driver-status"

// ReportDriverStatus handles POST /api/v1/runs/{id}/driver-status: a
// receiver that answered a delivery with 202 says whether it applied it.
func (h *restHandlers) ReportDriverStatus(c echo.Context, id apigen.RunID) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	report := store.DeliveryReport{RunID: id}
	o.required("generation")
	o.required("ok")
	if raw, ok := o.raw("generation"); ok {
		switch err := json.Unmarshal(raw, &report.Generation); {
		case err != nil || isNull(raw):
			got := jsonKind(raw)
			if got == "a number" {
				got = string(raw)
			}
			o.add("generation", "must be a whole number, got %s", got)
		case report.Generation < 1:
			o.add("generation", "must be at least 1, got %d", report.Generation)
		}
	}
	if ok, present := o.boolean("ok"); present {
		report.OK = ok
	}
	if message, ok := o.str("message"); ok {
		if l := utf8.RuneCountInString(message); l > maxRunText {
			o.add("message", "must be at most %d characters, got %d", maxRunText, l)
		}
		report.Message = message
	}
	if err := o.finish("generation", "ok", "message"); err != nil {
		return err
	}
	p, ok := PrincipalFrom(c)
	if !ok {
		return unauthorized(c, "", "This endpoint needs an API token.")
	}
	report.Actor = p.Actor()
	run, _, env, err := h.run(c, id)
	if err != nil {
		return err
	}
	recorder, ok := h.runStore.(DriverStatusStore)
	if !ok {
		return notFound("this server does not take driver statuses")
	}

	switch {
	case run.State.Terminal():
		return conflict(nil, "run %d has finished (%s); it takes no driver status. Nothing was recorded.", id, run.State)
	case report.Generation != run.Generation:
		return conflict(nil, "run %d is at generation %d; a status for generation %d is not for its current desired state. Nothing was recorded.",
			id, run.Generation, report.Generation)
	case run.AppliedGeneration >= run.Generation:
		return conflict(nil, "generation %d of run %d is already applied; it takes no further status. Nothing was recorded.", run.Generation, id)
	}
	ctx := c.Request().Context()
	d, err := recorder.ReportDelivery(ctx, report)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return conflict(nil, "nothing was delivered to a deploy system for generation %d of run %d yet; its environment %s uses the %s driver. Nothing was recorded.",
			report.Generation, id, env.Name, driverTypeOf(env.Driver))
	case errors.Is(err, store.ErrAlreadyReported):
		return conflict(nil, "the delivery of generation %d of run %d is already %s; its status cannot change. Nothing was recorded.",
			report.Generation, id, describeDelivery(d))
	case err != nil:
		return fmt.Errorf("recording the driver status of run %d generation %d: %w", id, report.Generation, err)
	}
	body := apigen.DriverStatus{RunId: id, Generation: d.Generation, Ok: d.Status == store.DeliverySucceeded,
		Status: apigen.DriverStatusStatus(d.Status), Message: d.Message, ReportedBy: d.ReportedBy}
	if d.ReportedAt != nil {
		body.ReportedAt = *d.ReportedAt
	}
	return c.JSON(http.StatusOK, body)
}

// driverTypeOf names an environment's driver type for messages.
func driverTypeOf(config json.RawMessage) string {
	var typed struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(config, &typed) != nil || typed.Type == "" {
		return "configured"
	}
	return typed.Type
}

// describeDelivery says how a finished delivery ended, for a refusal.
func describeDelivery(d store.DriverDelivery) string {
	switch {
	case d.ReportedBy != "":
		return fmt.Sprintf("%s (reported by %s)", d.Status, d.ReportedBy)
	case d.Status == store.DeliverySucceeded:
		return "succeeded (the receiver confirmed it when it was delivered)"
	default:
		return string(d.Status)
	}
}
