package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// DeliveryStatus is where the delivery of one desired state to a driver is.
type DeliveryStatus string

// The statuses of a delivery. Sending deliveries are being sent or wait for
// their next attempt; accepted ones wait for the receiver to report
// completion; succeeded and failed are final.
const (
	DeliverySending   DeliveryStatus = "sending"
	DeliveryAccepted  DeliveryStatus = "accepted"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
)

// ErrAlreadyReported is returned when a completion is reported for a
// delivery that already has its final status.
var ErrAlreadyReported = errors.New("the delivery already has its final status")

// DriverDelivery is the delivery of one generation of a run's desired state
// to a driver that confirms it later, such as the webhook driver.
type DriverDelivery struct {
	RunID      int64
	Generation int64
	// Driver is the driver type that delivers it.
	Driver string
	Status DeliveryStatus
	// Attempts counts the sends so far.
	Attempts       int
	FirstAttemptAt time.Time
	// NextAttemptAt is when a sending delivery may be sent again.
	NextAttemptAt *time.Time
	// LastError is why the last attempt did not succeed.
	LastError string
	// Message, ReportedBy and ReportedAt are what the receiver reported
	// with its completion, and who sent the report.
	Message    string
	ReportedBy string
	ReportedAt *time.Time
	UpdatedAt  time.Time
}

func deliveryFromRow(r sqlcdb.DriverDelivery) DriverDelivery {
	return DriverDelivery{
		RunID: r.RunID, Generation: r.Generation, Driver: r.Driver, Status: DeliveryStatus(r.Status),
		Attempts: int(r.Attempts), FirstAttemptAt: r.FirstAttemptAt, NextAttemptAt: r.NextAttemptAt,
		LastError: r.LastError, Message: r.Message, ReportedBy: r.ReportedBy, ReportedAt: r.ReportedAt,
		UpdatedAt: r.UpdatedAt,
	}
}

// BeginDelivery returns the delivery of a run's generation, creating it
// (status sending, first attempt now) the first time it is asked for.
func (s *Store) BeginDelivery(ctx context.Context, runID, generation int64, driver string) (DriverDelivery, error) {
	row, err := s.q.DriverDeliveryBegin(ctx, sqlcdb.DriverDeliveryBeginParams{
		RunID: runID, Generation: generation, Driver: driver, Now: s.Now(),
	})
	if err != nil {
		return DriverDelivery{}, mapError(err)
	}
	return deliveryFromRow(row), nil
}

// NewestDeliveryGeneration returns the newest generation delivered for the
// run, or 0, so a driver can ignore a stale worker's older generation.
func (s *Store) NewestDeliveryGeneration(ctx context.Context, runID int64) (int64, error) {
	n, err := s.q.DriverDeliveryNewestGeneration(ctx, runID)
	if err != nil {
		return 0, mapError(err)
	}
	return n, nil
}

// ClaimDeliveryAttempt counts a new attempt of a sending delivery that is
// due, and holds it until holdUntil so no other replica sends it at the
// same time. It returns claimed false, with the delivery as it is, when the
// delivery is not sending or not due yet.
func (s *Store) ClaimDeliveryAttempt(ctx context.Context, runID, generation int64, holdUntil time.Time) (DriverDelivery, bool, error) {
	row, err := s.q.DriverDeliveryClaimAttempt(ctx, sqlcdb.DriverDeliveryClaimAttemptParams{
		HoldUntil: &holdUntil, Now: s.Now(), RunID: runID, Generation: generation,
	})
	if err == nil {
		return deliveryFromRow(row), true, nil
	}
	if err = mapError(err); !errors.Is(err, ErrNotFound) {
		return DriverDelivery{}, false, err
	}
	d, err := s.Delivery(ctx, runID, generation)
	return d, false, err
}

// DeliveryAttempt is the outcome of one send of a delivery.
type DeliveryAttempt struct {
	RunID      int64
	Generation int64
	// Status is sending (to be sent again at NextAttemptAt), accepted,
	// succeeded or failed.
	Status        DeliveryStatus
	NextAttemptAt *time.Time
	// Error is why the attempt did not succeed; empty when it did.
	Error string
}

// FinishDeliveryAttempt records the outcome of an attempt. A completion the
// receiver reported while the attempt was in flight wins; the delivery is
// then returned as it is.
func (s *Store) FinishDeliveryAttempt(ctx context.Context, a DeliveryAttempt) (DriverDelivery, error) {
	switch a.Status {
	case DeliverySending, DeliveryAccepted, DeliverySucceeded, DeliveryFailed:
	default:
		return DriverDelivery{}, fmt.Errorf("%w: unknown delivery status %q", ErrInvalid, a.Status)
	}
	row, err := s.q.DriverDeliveryFinishAttempt(ctx, sqlcdb.DriverDeliveryFinishAttemptParams{
		Status: string(a.Status), NextAttemptAt: a.NextAttemptAt, LastError: a.Error, Now: s.Now(),
		RunID: a.RunID, Generation: a.Generation,
	})
	if err == nil {
		return deliveryFromRow(row), nil
	}
	if err = mapError(err); !errors.Is(err, ErrNotFound) {
		return DriverDelivery{}, err
	}
	return s.Delivery(ctx, a.RunID, a.Generation)
}

// Delivery returns the delivery of a run's generation, or ErrNotFound.
func (s *Store) Delivery(ctx context.Context, runID, generation int64) (DriverDelivery, error) {
	row, err := s.q.DriverDeliveryGet(ctx, sqlcdb.DriverDeliveryGetParams{RunID: runID, Generation: generation})
	if err != nil {
		return DriverDelivery{}, mapError(err)
	}
	return deliveryFromRow(row), nil
}

// DeliveryReport is a receiver's report that it applied, or could not
// apply, the desired state of a run's generation.
type DeliveryReport struct {
	RunID      int64
	Generation int64
	OK         bool
	Message    string
	// Actor is who reported it, such as "token:deploy-bot".
	Actor string
}

// ReportDelivery records a receiver's completion report: the delivery gets
// its final status, the run gets a "driver.status" event, and a run waiting
// for its driver becomes due at once, all in one transaction, so the engine
// of whichever replica steps the run sees it. It returns ErrNotFound when
// nothing was delivered for the generation, and the delivery with
// ErrAlreadyReported when it already has its final status.
func (s *Store) ReportDelivery(ctx context.Context, r DeliveryReport) (DriverDelivery, error) {
	status := DeliveryFailed
	if r.OK {
		status = DeliverySucceeded
	}
	var d DriverDelivery
	err := s.inTx(ctx, func(tx *Store) error {
		now := tx.Now()
		row, err := tx.q.DriverDeliveryReport(ctx, sqlcdb.DriverDeliveryReportParams{
			Status: string(status), Message: r.Message, ReportedBy: r.Actor, Now: &now,
			RunID: r.RunID, Generation: r.Generation,
		})
		if err != nil {
			if err = mapError(err); !errors.Is(err, ErrNotFound) {
				return err
			}
			if d, err = tx.Delivery(ctx, r.RunID, r.Generation); err != nil {
				return err
			}
			return ErrAlreadyReported
		}
		d = deliveryFromRow(row)
		if _, err := tx.appendEvent(ctx, r.RunID, Event{Type: "driver.status", Actor: r.Actor, Payload: map[string]any{
			"generation": r.Generation, "ok": r.OK, "message": r.Message, "driver": d.Driver,
		}}); err != nil {
			return err
		}
		return mapError(tx.q.RunWakeForDriver(ctx, sqlcdb.RunWakeForDriverParams{Now: &now, ID: r.RunID}))
	})
	return d, err
}
