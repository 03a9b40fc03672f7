package push

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDecodeKeepsBadEntriesForValidation(t *testing.T) {
	t.Parallel()
	at := ts(created.Add(time.Minute))
	body := `{"samples": [
		{"cohort": "candidate", "metric": "latency", "timestamp": "` + at + `", "value": NaN},
		{"cohort": "NaN", "metric": "latency", "timestamp": "` + at + `", "value": -Infinity},
		{"cohort": "candidate", "metric": "latency", "timestamp": "` + at + `", "value": "12.5"},
		{"cohort": "candidate", "metric": "error_rate", "timestamp": "` + at + `", "count": "Infinity", "sum": null},
		{"cohort": "candidate", "metric": "error_rate", "timestamp": "` + at + `", "count": true, "sum": 1e999}
	]}`
	b, err := DecodeBatch([]byte(body))
	require.NoError(t, err)
	require.Len(t, b.Samples, 5)
	require.True(t, math.IsNaN(b.Samples[0].Value.Value))
	require.Equal(t, "NaN", b.Samples[1].Cohort, "text inside strings is left alone")
	require.True(t, math.IsInf(b.Samples[1].Value.Value, -1))
	require.Equal(t, Num(12.5), b.Samples[2].Value, "numbers may come as strings")

	_, res := Prepare(RunSubject(testRun), now, b)
	require.Equal(t, 1, res.Accepted)
	require.Equal(t, []Rejection{
		{Index: 0, Errors: []string{"value is NaN"}},
		{Index: 1, Errors: []string{`cohort "NaN" is unknown; use candidate or baseline`, "value is infinite"}},
		{Index: 3, Errors: []string{"count is infinite", "sum is null; JSON has no NaN, and JavaScript writes NaN as null"}},
		{Index: 4, Errors: []string{"count is not a number: true", "sum is infinite"}},
	}, res.Rejected)
}

func TestEntriesOfTheWrongShapeAreRejectedAlone(t *testing.T) {
	t.Parallel()
	at := ts(created.Add(time.Minute))
	body := `{"samples": [
		{"cohort": "candidate", "metric": "error_rate", "timestamp": 1772366400, "count": 1, "sum": 0},
		42,
		{"cohort": "candidate", "metric": "latency", "timestamp": "` + at + `", "buckets": [1, 2]},
		{"cohort": "candidate", "metric": "error_rate", "timestamp": "` + at + `", "count": 1, "sum": 0}
	]}`
	b, err := DecodeBatch([]byte(body))
	require.NoError(t, err)
	_, res := Prepare(RunSubject(testRun), now, b)
	require.Equal(t, 1, res.Accepted)
	require.Equal(t, []Rejection{
		{Index: 0, Errors: []string{"timestamp must be a string, not a number"}},
		{Index: 1, Errors: []string{"the entry must be a JSON object, not a number"}},
		{Index: 2, Errors: []string{"buckets must be an object, not an array"}},
	}, res.Rejected)
}

func TestBodiesThatAreNotBatches(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"samples": [`:       "the body is not valid JSON: unexpected end of JSON input",
		`[{"metric": "cpu"}]`: `the body must be a JSON object like {"samples": [...]}, not an array`,
		`{"samples": 3}`:      "samples must be an array, not a number",
		`{}`:                  "the body has no samples",
		`{"samples": []}`:     "the body has no samples",
		`{"samples": [}`:      "the body is not valid JSON: invalid character '}' looking for beginning of value (at byte 14)",
	} {
		_, err := DecodeBatch([]byte(body))
		var de *DecodeError
		require.ErrorAs(t, err, &de, body)
		require.Contains(t, de.Error(), want, body)
	}
}

func TestNumbersRoundTrip(t *testing.T) {
	t.Parallel()
	in := Batch{Samples: []Sample{{Cohort: "candidate", Metric: "cpu", Timestamp: "2026-03-01T12:00:00Z", Value: Num(math.NaN())}}}
	raw, err := json.Marshal(in)
	require.NoError(t, err)
	require.JSONEq(t, `{"samples": [{"cohort": "candidate", "metric": "cpu", "timestamp": "2026-03-01T12:00:00Z", "value": "NaN"}]}`, string(raw))
	out, err := DecodeBatch(raw)
	require.NoError(t, err)
	require.True(t, math.IsNaN(out.Samples[0].Value.Value))
	require.False(t, out.Samples[0].Count.present(), "absent fields stay absent")
}
