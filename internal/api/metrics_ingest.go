package api

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/analysis/push"
)

// MaxMetricsBody bounds a pushed batch. Ten megabytes hold about 100,000
// samples, far more than an agent should hold back; a larger body is more
// likely a runaway client than data worth the memory.
const MaxMetricsBody = 10 << 20

// MetricsIngester takes batches of samples that agents and CI push for a
// run; push.Ingester is the implementation.
type MetricsIngester interface {
	Ingest(ctx context.Context, runID int64, batch push.Batch) (push.Result, error)
}

type metricsIngestHandlers struct {
	ingest MetricsIngester
}

// rejectedProblem is the problem document for a batch of which no sample
// could be kept; Errors names each sample and why, as a 200 would.
type rejectedProblem struct {
	problem
	Errors []push.Rejection `json:"errors"`
}

// ingestMetrics handles POST /api/v1/runs/:id/metrics.
func (h *metricsIngestHandlers) ingestMetrics(c echo.Context) error {
	runID, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || runID <= 0 {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("run id %q is not a positive whole number", c.Param("id")))
	}
	batch, err := readMetricBatch(c)
	if err != nil {
		return err
	}

	res, err := h.ingest.Ingest(c.Request().Context(), runID, batch)
	if errors.Is(err, push.ErrUnknownRun) {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("run %d does not exist", runID))
	}
	if err != nil {
		return fmt.Errorf("ingesting metrics of run %d: %w", runID, err)
	}

	return answerIngest(c, res)
}

// answerIngest answers a pushed batch: 200 with the result when at least
// one sample was kept, else 422 naming every sample and why.
func answerIngest(c echo.Context, res push.Result) error {
	if res.Accepted == 0 {
		// Nothing was kept, so this is an error, but the client still
		// needs to know what was wrong with each sample.
		status := http.StatusUnprocessableEntity
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		return c.JSON(status, rejectedProblem{
			problem: problem{
				Type: "about:blank", Title: http.StatusText(status), Status: status,
				Detail: fmt.Sprintf("none of the %d samples could be accepted; errors lists each and why", len(res.Rejected)),
			},
			Errors: res.Rejected,
		})
	}
	// At least one sample was kept: push.Result says how many, and names
	// the others with every reason.
	return c.JSON(http.StatusOK, res)
}

// isJSON accepts application/json and any application/*+json type.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == echo.MIMEApplicationJSON || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
