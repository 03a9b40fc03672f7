// Package plan compiles a deployment strategy and its parameters into a plan:
// the ordered phases a run goes through, each saying what the driver must make
// true (versions, instance counts, traffic weights, cohort routing, mirroring),
// how long to bake, what to analyse and whether a person must approve before
// the next phase, plus how to roll back.
//
// The package is pure: parameters in, plan out, with no I/O and no clock, so
// the engine can rebuild a plan at any time and get the same answer, and the
// API can validate parameters and preview plans without side effects. Bad
// input is reported as a *ValidationError carrying every field error at once,
// with paths such as "params.steps[2]", so the API can return field-level
// problem details and pages can mark each offending field.
package plan
