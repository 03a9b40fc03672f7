package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestDeliveryAttemptsAreClaimedOnceAndRetriedWhenDue(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")

	d, err := f.store.BeginDelivery(ctx, run.ID, 1, "webhook")
	require.NoError(t, err)
	require.Equal(t, store.DeliverySending, d.Status)
	require.True(t, fixedNow.Equal(d.FirstAttemptAt))
	again, err := f.store.BeginDelivery(ctx, run.ID, 1, "webhook")
	require.NoError(t, err)
	require.Equal(t, d, again, "beginning a delivery twice returns the first")

	d, claimed, err := f.store.ClaimDeliveryAttempt(ctx, run.ID, 1, fixedNow.Add(10*time.Second))
	require.NoError(t, err)
	require.True(t, claimed)
	require.Equal(t, 1, d.Attempts)
	_, claimed, err = f.store.ClaimDeliveryAttempt(ctx, run.ID, 1, fixedNow.Add(10*time.Second))
	require.NoError(t, err)
	require.False(t, claimed, "an attempt in flight holds the delivery")

	retry := fixedNow
	d, err = f.store.FinishDeliveryAttempt(ctx, store.DeliveryAttempt{RunID: run.ID, Generation: 1,
		Status: store.DeliverySending, NextAttemptAt: &retry, Error: "receiver answered 503"})
	require.NoError(t, err)
	require.Equal(t, "receiver answered 503", d.LastError)
	d, claimed, err = f.store.ClaimDeliveryAttempt(ctx, run.ID, 1, fixedNow.Add(10*time.Second))
	require.NoError(t, err)
	require.True(t, claimed)
	require.Equal(t, 2, d.Attempts)

	_, err = f.store.FinishDeliveryAttempt(ctx, store.DeliveryAttempt{RunID: run.ID, Generation: 1, Status: "lost"})
	require.ErrorIs(t, err, store.ErrInvalid)

	d, err = f.store.FinishDeliveryAttempt(ctx, store.DeliveryAttempt{RunID: run.ID, Generation: 1, Status: store.DeliverySucceeded})
	require.NoError(t, err)
	require.Equal(t, store.DeliverySucceeded, d.Status)
	_, claimed, err = f.store.ClaimDeliveryAttempt(ctx, run.ID, 1, fixedNow.Add(10*time.Second))
	require.NoError(t, err)
	require.False(t, claimed, "a delivered state is not sent again")

	_, err = f.store.BeginDelivery(ctx, run.ID, 3, "webhook")
	require.NoError(t, err)
	newest, err := f.store.NewestDeliveryGeneration(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, int64(3), newest)
}

func TestReportedDeliveryWakesTheRunAndIsRecordedOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	run := f.newRun(t, "v2")
	later := fixedNow.Add(time.Hour)
	run.NextEvalAt = &later
	run, err := f.store.UpdateRun(ctx, run, store.Event{Type: "test.scheduled"})
	require.NoError(t, err)

	_, err = f.store.ReportDelivery(ctx, store.DeliveryReport{RunID: run.ID, Generation: 1, OK: true})
	require.ErrorIs(t, err, store.ErrNotFound, "nothing was delivered for generation 1 yet")

	_, err = f.store.BeginDelivery(ctx, run.ID, 1, "webhook")
	require.NoError(t, err)
	_, err = f.store.FinishDeliveryAttempt(ctx, store.DeliveryAttempt{RunID: run.ID, Generation: 1, Status: store.DeliveryAccepted})
	require.NoError(t, err)

	d, err := f.store.ReportDelivery(ctx, store.DeliveryReport{RunID: run.ID, Generation: 1, OK: false,
		Message: "helm upgrade failed", Actor: "token:deploy-bot"})
	require.NoError(t, err)
	require.Equal(t, store.DeliveryFailed, d.Status)
	require.Equal(t, "helm upgrade failed", d.Message)
	require.Equal(t, "token:deploy-bot", d.ReportedBy)

	woken, err := f.store.Run(ctx, run.ID)
	require.NoError(t, err)
	require.True(t, fixedNow.Equal(*woken.NextEvalAt), "the run is due at once")
	require.Equal(t, run.Version, woken.Version, "waking is not a state change")
	events, err := f.store.ListRunEvents(ctx, run.ID, 0, 100)
	require.NoError(t, err)
	last := events[len(events)-1]
	require.Equal(t, "driver.status", last.Type)
	require.Equal(t, "token:deploy-bot", last.Actor)
	require.JSONEq(t, `{"generation": 1, "ok": false, "message": "helm upgrade failed", "driver": "webhook"}`, string(last.Payload))

	d, err = f.store.ReportDelivery(ctx, store.DeliveryReport{RunID: run.ID, Generation: 1, OK: true, Actor: "token:deploy-bot"})
	require.ErrorIs(t, err, store.ErrAlreadyReported)
	require.Equal(t, store.DeliveryFailed, d.Status, "the first report stands")
	after, err := f.store.ListRunEvents(ctx, run.ID, 0, 100)
	require.NoError(t, err)
	require.Len(t, after, len(events), "a refused report records nothing")

	// A report that arrives while the attempt is still in flight wins over
	// the attempt's own outcome.
	_, err = f.store.BeginDelivery(ctx, run.ID, 2, "webhook")
	require.NoError(t, err)
	_, err = f.store.ReportDelivery(ctx, store.DeliveryReport{RunID: run.ID, Generation: 2, OK: true})
	require.NoError(t, err)
	d, err = f.store.FinishDeliveryAttempt(ctx, store.DeliveryAttempt{RunID: run.ID, Generation: 2, Status: store.DeliveryAccepted})
	require.NoError(t, err)
	require.Equal(t, store.DeliverySucceeded, d.Status)
}
