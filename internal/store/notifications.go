package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// The event tables outgoing notifications are read from, and the source of
// the test notifications admins send.
const (
	NotificationSourceRuns  = "run_events"
	NotificationSourceFlags = "flag_events"
	NotificationSourceTest  = "test"
)

// NotificationStatus is where a notification delivery is.
type NotificationStatus string

// The statuses of a notification delivery: pending ones wait for their
// (next) attempt, delivered and failed are final.
const (
	NotificationPending   NotificationStatus = "pending"
	NotificationDelivered NotificationStatus = "delivered"
	NotificationFailed    NotificationStatus = "failed"
)

// NotificationSubscription says which run and flag events are sent where,
// in which format, signed with which secret.
type NotificationSubscription struct {
	ID   int64
	Name string
	// App is an app slug, or "*" for every app; Environment an
	// environment name, or "*" for every environment.
	App         string
	Environment string
	// EventTypes are event types or patterns such as "run.*".
	EventTypes []string
	URL        string
	// Secret signs every delivery. It is never shown after creation.
	Secret    string
	Format    string
	Enabled   bool
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func subscriptionFromRow(r sqlcdb.NotificationSubscription) NotificationSubscription {
	return NotificationSubscription{
		ID: r.ID, Name: r.Name, App: r.App, Environment: r.Environment, EventTypes: r.EventTypes, URL: r.Url,
		Secret: r.Secret, Format: r.Format, Enabled: r.Enabled, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// CreateNotificationSubscription stores a subscription; its ID, CreatedAt
// and UpdatedAt are set from the database. A name in use is
// ErrAlreadyExists. Callers validate the fields first (notify.Validate);
// the schema refuses what slips through with ErrInvalid.
func (s *Store) CreateNotificationSubscription(ctx context.Context, n NotificationSubscription) (NotificationSubscription, error) {
	row, err := s.q.NotificationSubscriptionInsert(ctx, sqlcdb.NotificationSubscriptionInsertParams{
		Name: n.Name, App: n.App, Environment: n.Environment, EventTypes: n.EventTypes, Url: n.URL, Secret: n.Secret,
		Format: n.Format, Enabled: n.Enabled, CreatedBy: n.CreatedBy, Now: s.Now(),
	})
	if err != nil {
		return NotificationSubscription{}, mapError(err)
	}
	return subscriptionFromRow(row), nil
}

// NotificationSubscription returns one subscription, or ErrNotFound.
func (s *Store) NotificationSubscription(ctx context.Context, id int64) (NotificationSubscription, error) {
	row, err := s.q.NotificationSubscriptionGet(ctx, id)
	if err != nil {
		return NotificationSubscription{}, mapError(err)
	}
	return subscriptionFromRow(row), nil
}

// ListNotificationSubscriptions returns every subscription by name.
func (s *Store) ListNotificationSubscriptions(ctx context.Context) ([]NotificationSubscription, error) {
	rows, err := s.q.NotificationSubscriptionList(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, subscriptionFromRow), nil
}

// UpdateNotificationSubscription replaces a subscription's name, filters,
// URL, format and enabled flag; the secret stays. It returns ErrNotFound
// for an unknown id.
func (s *Store) UpdateNotificationSubscription(ctx context.Context, n NotificationSubscription) (NotificationSubscription, error) {
	row, err := s.q.NotificationSubscriptionUpdate(ctx, sqlcdb.NotificationSubscriptionUpdateParams{
		Name: n.Name, App: n.App, Environment: n.Environment, EventTypes: n.EventTypes, Url: n.URL,
		Format: n.Format, Enabled: n.Enabled, Now: s.Now(), ID: n.ID,
	})
	if err != nil {
		return NotificationSubscription{}, mapError(err)
	}
	return subscriptionFromRow(row), nil
}

// DeleteNotificationSubscription deletes a subscription with its
// deliveries, or returns ErrNotFound.
func (s *Store) DeleteNotificationSubscription(ctx context.Context, id int64) error {
	n, err := s.q.NotificationSubscriptionDelete(ctx, id)
	if err != nil {
		return mapError(err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// NotificationEvent is a run or flag event read for notification, with
// what it is about.
type NotificationEvent struct {
	// Source is NotificationSourceRuns or NotificationSourceFlags; ID the
	// event's id in that table.
	Source  string
	ID      int64
	At      time.Time
	Type    string
	Actor   string
	Payload json.RawMessage
	App     string
	// Environment is empty for a flag event about every environment.
	Environment string
	// RunID and Version are set for run events, FlagKey for flag events.
	RunID   int64
	Version string
	FlagKey string
}

// NewNotificationDelivery is an event to send to one subscription, with
// its body rendered in the subscription's format.
type NewNotificationDelivery struct {
	SubscriptionID int64
	EventSource    string
	EventID        int64
	EventType      string
	Summary        string
	Body           []byte
}

// NotificationPlanner turns events into deliveries, given the enabled
// subscriptions. It runs inside the transaction that holds the cursor.
type NotificationPlanner func(events []NotificationEvent, subs []NotificationSubscription) ([]NewNotificationDelivery, error)

// EnqueueOptions tune one EnqueueNotifications pass.
type EnqueueOptions struct {
	// Batch bounds the events read per pass (default 500).
	Batch int
	// Settle is how long an event must be old before a gap of ids in front
	// of it is taken for a rolled-back write rather than one still being
	// committed (default 5s).
	Settle time.Duration
}

// EnqueueNotifications reads the events of source after its cursor,
// lets plan turn them into deliveries, stores those and moves the cursor
// on, all in one transaction that holds the cursor's row lock. A replica
// that finds the cursor locked by another skips the pass, so each event is
// enqueued once. The first pass starts the cursor at the newest event: the
// history is not replayed. It returns how many events it consumed and how
// many deliveries it stored.
func (s *Store) EnqueueNotifications(ctx context.Context, source string, opts EnqueueOptions, plan NotificationPlanner) (events, deliveries int, err error) {
	if source != NotificationSourceRuns && source != NotificationSourceFlags {
		return 0, 0, fmt.Errorf("%w: unknown notification source %q", ErrInvalid, source)
	}
	batch := limitOr(opts.Batch, 500)
	settle := opts.Settle
	if settle <= 0 {
		settle = 5 * time.Second
	}
	err = s.inTx(ctx, func(tx *Store) error {
		now := tx.Now()
		var newest int64
		var err error
		if source == NotificationSourceRuns {
			newest, err = tx.q.NotificationNewestRunEvent(ctx)
		} else {
			newest, err = tx.q.NotificationNewestFlagEvent(ctx)
		}
		if err != nil {
			return mapError(err)
		}
		if err := tx.q.NotificationCursorInit(ctx, sqlcdb.NotificationCursorInitParams{Source: source, LastID: newest, Now: now}); err != nil {
			return mapError(err)
		}
		last, err := tx.q.NotificationCursorLock(ctx, source)
		if errors.Is(mapError(err), ErrNotFound) {
			// Another replica holds the cursor and is enqueueing.
			return nil
		}
		if err != nil {
			return mapError(err)
		}
		read, err := tx.notificationEventsAfter(ctx, source, last, batch)
		if err != nil {
			return err
		}
		// Ids are handed out when rows are written but become visible when
		// their transactions commit, possibly out of order. Stop in front
		// of a gap until the event after it has settled, so that an event
		// still being committed is not skipped.
		expected := last + 1
		var take []NotificationEvent
		for _, ev := range read {
			if ev.ID != expected && ev.At.After(now.Add(-settle)) {
				break
			}
			take = append(take, ev)
			expected = ev.ID + 1
		}
		if len(take) == 0 {
			return nil
		}
		subs, err := tx.q.NotificationSubscriptionListEnabled(ctx)
		if err != nil {
			return mapError(err)
		}
		planned, err := plan(take, mapRows(subs, subscriptionFromRow))
		if err != nil {
			return err
		}
		for _, d := range planned {
			_, err := tx.q.NotificationDeliveryInsert(ctx, sqlcdb.NotificationDeliveryInsertParams{
				SubscriptionID: d.SubscriptionID, EventSource: d.EventSource, EventID: d.EventID,
				EventType: d.EventType, Summary: d.Summary, Body: string(d.Body), Now: &now,
			})
			switch err = mapError(err); {
			case errors.Is(err, ErrNotFound):
				// Enqueued already.
			case err != nil:
				return fmt.Errorf("enqueueing %s event %d for subscription %d: %w", d.EventSource, d.EventID, d.SubscriptionID, err)
			default:
				deliveries++
			}
		}
		events = len(take)
		return mapError(tx.q.NotificationCursorAdvance(ctx, sqlcdb.NotificationCursorAdvanceParams{
			LastID: take[len(take)-1].ID, Now: now, Source: source,
		}))
	})
	if err != nil {
		return 0, 0, err
	}
	return events, deliveries, nil
}

func (s *Store) notificationEventsAfter(ctx context.Context, source string, after int64, limit int) ([]NotificationEvent, error) {
	if source == NotificationSourceRuns {
		rows, err := s.q.NotificationRunEventsAfter(ctx, sqlcdb.NotificationRunEventsAfterParams{AfterID: after, Max: int32(limit)})
		if err != nil {
			return nil, mapError(err)
		}
		return mapRows(rows, func(r sqlcdb.NotificationRunEventsAfterRow) NotificationEvent {
			return NotificationEvent{Source: source, ID: r.ID, At: r.At, Type: r.Type, Actor: r.Actor, Payload: r.Payload,
				App: r.App, Environment: r.Environment, RunID: r.RunID, Version: r.Version}
		}), nil
	}
	rows, err := s.q.NotificationFlagEventsAfter(ctx, sqlcdb.NotificationFlagEventsAfterParams{AfterID: after, Max: int32(limit)})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, func(r sqlcdb.NotificationFlagEventsAfterRow) NotificationEvent {
		return NotificationEvent{Source: source, ID: r.ID, At: r.At, Type: r.Type, Actor: r.Actor, Payload: r.Payload,
			App: r.App, Environment: r.Environment, FlagKey: r.FlagKey}
	}), nil
}

// EnqueueTestNotification stores a test delivery for a subscription, due
// now, and returns it.
func (s *Store) EnqueueTestNotification(ctx context.Context, d NewNotificationDelivery) (NotificationDelivery, error) {
	now := s.Now()
	row, err := s.q.NotificationDeliveryInsert(ctx, sqlcdb.NotificationDeliveryInsertParams{
		SubscriptionID: d.SubscriptionID, EventSource: NotificationSourceTest, EventID: 0,
		EventType: d.EventType, Summary: d.Summary, Body: string(d.Body), Now: &now,
	})
	if err != nil {
		return NotificationDelivery{}, mapError(err)
	}
	return deliveryOfRow(row), nil
}

// NotificationAttempt is one try to send a delivery.
type NotificationAttempt struct {
	Attempt int
	At      time.Time
	// StatusCode is the receiver's HTTP status; 0 when no answer came.
	StatusCode int
	// Response is the first bytes of the answer.
	Response string
	Error    string
	Duration time.Duration
}

// NotificationDelivery is an event sent, or to be sent, to a subscription,
// with its attempts when listed.
type NotificationDelivery struct {
	ID int64
	// Key is sent in the Flightdeck-Delivery header, so receivers can drop
	// a delivery they have seen.
	Key            string
	SubscriptionID int64
	EventSource    string
	EventID        int64
	EventType      string
	Summary        string
	Body           string
	Status         NotificationStatus
	Attempts       int
	// NextAttemptAt is when a pending delivery is (re)sent.
	NextAttemptAt  *time.Time
	LastStatusCode int
	LastError      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// Log holds the attempts, oldest first, when the delivery was listed.
	Log []NotificationAttempt
}

func deliveryOfRow(r sqlcdb.NotificationDelivery) NotificationDelivery {
	return NotificationDelivery{
		ID: r.ID, Key: r.DeliveryKey, SubscriptionID: r.SubscriptionID, EventSource: r.EventSource, EventID: r.EventID,
		EventType: r.EventType, Summary: r.Summary, Body: r.Body, Status: NotificationStatus(r.Status), Attempts: int(r.Attempts),
		NextAttemptAt: r.NextAttemptAt, LastStatusCode: int(r.LastStatusCode.Int32), LastError: r.LastError,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// NotificationDeliveryByID returns one delivery without its attempts, or
// ErrNotFound.
func (s *Store) NotificationDeliveryByID(ctx context.Context, id int64) (NotificationDelivery, error) {
	row, err := s.q.NotificationDeliveryGet(ctx, id)
	if err != nil {
		return NotificationDelivery{}, mapError(err)
	}
	return deliveryOfRow(row), nil
}

// ListNotificationDeliveries returns up to limit deliveries of a
// subscription with ids below beforeID (0: from the newest), newest first,
// each with its attempts.
func (s *Store) ListNotificationDeliveries(ctx context.Context, subscriptionID, beforeID int64, limit int) ([]NotificationDelivery, error) {
	if beforeID <= 0 {
		beforeID = math.MaxInt64
	}
	rows, err := s.q.NotificationDeliveryList(ctx, sqlcdb.NotificationDeliveryListParams{
		SubscriptionID: subscriptionID, BeforeID: beforeID, Max: int32(limitOr(limit, 50)),
	})
	if err != nil {
		return nil, mapError(err)
	}
	out := mapRows(rows, deliveryOfRow)
	if len(out) == 0 {
		return out, nil
	}
	ids := make([]int64, len(out))
	index := make(map[int64]int, len(out))
	for i, d := range out {
		ids[i], index[d.ID] = d.ID, i
	}
	attempts, err := s.q.NotificationAttemptList(ctx, ids)
	if err != nil {
		return nil, mapError(err)
	}
	for _, a := range attempts {
		i := index[a.DeliveryID]
		out[i].Log = append(out[i].Log, NotificationAttempt{
			Attempt: int(a.Attempt), At: a.At, StatusCode: int(a.StatusCode.Int32), Response: a.Response,
			Error: a.Error, Duration: time.Duration(a.DurationMs) * time.Millisecond,
		})
	}
	return out, nil
}

// ClaimedNotification is a delivery claimed for one attempt, with where to
// send it and the secret to sign it with.
type ClaimedNotification struct {
	ID             int64
	Key            string
	SubscriptionID int64
	EventType      string
	Body           []byte
	// Attempt is the number of this attempt, from 1.
	Attempt int
	URL     string
	Secret  string
}

// ClaimNotificationDeliveries claims up to limit due deliveries of enabled
// subscriptions for one attempt each, holding them until holdUntil so no
// other replica sends them meanwhile.
func (s *Store) ClaimNotificationDeliveries(ctx context.Context, holdUntil time.Time, limit int) ([]ClaimedNotification, error) {
	rows, err := s.q.NotificationDeliveryClaim(ctx, sqlcdb.NotificationDeliveryClaimParams{
		HoldUntil: &holdUntil, Now: s.Now(), Max: int32(limitOr(limit, 20)),
	})
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, func(r sqlcdb.NotificationDeliveryClaimRow) ClaimedNotification {
		return ClaimedNotification{ID: r.ID, Key: r.DeliveryKey, SubscriptionID: r.SubscriptionID, EventType: r.EventType,
			Body: []byte(r.Body), Attempt: int(r.Attempts), URL: r.Url, Secret: r.Secret}
	}), nil
}

// NotificationOutcome is the result of one claimed attempt.
type NotificationOutcome struct {
	DeliveryID int64
	NotificationAttempt
	// Status is pending (retry at NextAttemptAt), delivered or failed.
	Status        NotificationStatus
	NextAttemptAt *time.Time
}

// FinishNotificationAttempt logs an attempt and records its outcome on the
// delivery in one transaction. When the delivery was claimed again after
// this attempt's hold ran out, the attempt is logged and the newer claim
// keeps the delivery.
func (s *Store) FinishNotificationAttempt(ctx context.Context, o NotificationOutcome) error {
	switch o.Status {
	case NotificationPending:
		if o.NextAttemptAt == nil {
			return fmt.Errorf("%w: a pending notification needs its next attempt time", ErrInvalid)
		}
	case NotificationDelivered, NotificationFailed:
		o.NextAttemptAt = nil
	default:
		return fmt.Errorf("%w: unknown notification status %q", ErrInvalid, o.Status)
	}
	var code pgtype.Int4
	if o.StatusCode > 0 {
		code = pgtype.Int4{Int32: int32(o.StatusCode), Valid: true}
	}
	return s.inTx(ctx, func(tx *Store) error {
		if err := tx.q.NotificationAttemptInsert(ctx, sqlcdb.NotificationAttemptInsertParams{
			DeliveryID: o.DeliveryID, Attempt: int32(o.Attempt), At: o.At.UTC(), StatusCode: code,
			Response: o.Response, Error: o.Error, DurationMs: int32(o.Duration.Milliseconds()),
		}); err != nil {
			return mapError(err)
		}
		_, err := tx.q.NotificationDeliveryFinish(ctx, sqlcdb.NotificationDeliveryFinishParams{
			Status: string(o.Status), NextAttemptAt: o.NextAttemptAt, LastStatusCode: code, LastError: o.Error,
			Now: tx.Now(), ID: o.DeliveryID, Attempt: int32(o.Attempt),
		})
		if err = mapError(err); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
}
