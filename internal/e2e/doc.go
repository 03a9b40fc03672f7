// Package e2e holds Flightdeck's end-to-end tests on a real stack: the
// server binary against Postgres, nginx moving real user traffic between
// versions of the sample app (examples/sampleapp), and Prometheus scraping
// those versions, so a release is judged from requests that actually
// happened.
//
// The tests need nginx and Prometheus on the machine (Debian packages
// nginx-light and prometheus). Without them the tests are skipped, except
// with CI=true, where a missing one fails the run so the suite can never be
// skipped without anyone noticing.
package e2e
