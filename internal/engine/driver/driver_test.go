package driver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// stubDriver is a driver that does nothing, told apart by its name.
type stubDriver struct {
	name string
}

// Apply does nothing.
func (stubDriver) Apply(context.Context, driver.Request) error { return nil }

// setup returns a registry with the three driver types of the design.
func setup(t *testing.T) *driver.Registry {
	t.Helper()
	t.Parallel()
	r := driver.NewRegistry()
	for _, typ := range []string{"webhook", "simulator", "nginx"} {
		r.Register(typ, stubDriver{name: typ})
	}
	return r
}

func TestLookupFindsDriverByType(t *testing.T) {
	r := setup(t)
	d, err := r.Lookup(json.RawMessage(`{"type": "nginx", "upstream": "app"}`))
	require.NoError(t, err)
	require.Equal(t, stubDriver{name: "nginx"}, d)
	require.Equal(t, []string{"nginx", "simulator", "webhook"}, r.Types())
}

func TestLookupErrors(t *testing.T) {
	r := setup(t)
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{"unknown type", `{"type": "kubernetes"}`, `unknown driver type "kubernetes"; known driver types: nginx, simulator, webhook`},
		{"missing", ``, `driver config is missing; it must be a JSON object with a "type"; known driver types: nginx, simulator, webhook`},
		{"null", `null`, `driver config is missing`},
		{"no type", `{"url": "https://deploy.example"}`, `driver config has no "type"; known driver types: nginx, simulator, webhook`},
		{"type not a string", `{"type": 3}`, `driver config "type" must be a string, got 3`},
		{"empty type", `{"type": " "}`, `driver config "type" must not be empty`},
		{"not an object", `["simulator"]`, `driver config must be a JSON object with a "type", got an array; known driver types: nginx, simulator, webhook`},
		{"a string", `"simulator"`, `driver config must be a JSON object with a "type", got a string`},
		{"not json", `{type: simulator}`, `driver config is not valid JSON; it must be a JSON object with a "type"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := r.Lookup(json.RawMessage(tt.config))
			require.Nil(t, d)
			require.ErrorContains(t, err, tt.want)
			require.ErrorIs(t, err, driver.ErrPermanent)
		})
	}
}

func TestLookupWithNothingRegistered(t *testing.T) {
	t.Parallel()
	_, err := driver.NewRegistry().Lookup(json.RawMessage(`{"type": "simulator"}`))
	require.EqualError(t, err, `unknown driver type "simulator"; known driver types: none registered`)
}

func TestRegisterRejectsWiringMistakes(t *testing.T) {
	r := setup(t)
	require.PanicsWithValue(t, `driver: Register called twice for type "nginx"`, func() { r.Register("nginx", stubDriver{}) })
	require.Panics(t, func() { r.Register("", stubDriver{}) })
	require.Panics(t, func() { r.Register("kubernetes", nil) })
}

func TestPermanentKeepsMessageAndCause(t *testing.T) {
	t.Parallel()
	require.NoError(t, driver.Permanent(nil))

	cause := &driver.ConfigError{Type: "webhook", Errors: []plan.FieldError{{Field: "url", Message: "must not be empty"}}}
	err := fmt.Errorf("applying phase 2: %w", driver.Permanent(cause))
	require.EqualError(t, err, "applying phase 2: invalid webhook driver config: url: must not be empty")
	require.ErrorIs(t, err, driver.ErrPermanent)
	configErr, ok := errors.AsType[*driver.ConfigError](err)
	require.True(t, ok)
	require.Equal(t, "url", configErr.Errors[0].Field)

	require.NotErrorIs(t, errors.New("connection refused"), driver.ErrPermanent)
}
