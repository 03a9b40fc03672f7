package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// ApprovalLinkTTL is how long a link to an approval, posted in a chat
// message, keeps opening it.
const ApprovalLinkTTL = 24 * time.Hour

// ApprovalLinks signs and checks links that open the approval of one
// run's phase, for chat messages. A link only opens the approvals page:
// nothing is approved on GET, and the person still signs in and decides
// with their own role and the form's CSRF token.
type ApprovalLinks struct {
	key       []byte
	publicURL string
	ttl       time.Duration
	now       func() time.Time
}

// NewApprovalLinks signs with key; publicURL is where people reach the
// server ("" makes the links relative).
func NewApprovalLinks(key []byte, publicURL string, now func() time.Time) *ApprovalLinks {
	if now == nil {
		now = time.Now
	}
	return &ApprovalLinks{key: key, publicURL: strings.TrimRight(publicURL, "/"), ttl: ApprovalLinkTTL, now: now}
}

// approvalLinkRoute is where signed links point.
const approvalLinkRoute = "/approvals/link/:token"

// URL returns a link to the approval of the run's phase, valid for
// ApprovalLinkTTL.
func (l *ApprovalLinks) URL(runID int64, phase int) string {
	return l.publicURL + "/approvals/link/" + l.token(runID, phase, l.now().Add(l.ttl))
}

// token is the run, phase and expiry, then an HMAC-SHA256 of them.
func (l *ApprovalLinks) token(runID int64, phase int, expires time.Time) string {
	msg := make([]byte, 24)
	binary.BigEndian.PutUint64(msg[0:], uint64(runID))
	binary.BigEndian.PutUint64(msg[8:], uint64(phase))
	binary.BigEndian.PutUint64(msg[16:], uint64(expires.Unix()))
	mac := hmac.New(sha256.New, l.key)
	mac.Write(msg)
	return base64.RawURLEncoding.EncodeToString(append(msg, mac.Sum(nil)...))
}

var (
	errLinkInvalid = errors.New("this approval link is not one Flightdeck made: it may have been cut short when it was copied")
	errLinkExpired = errors.New("this approval link has expired")
)

// check returns the run and phase of a valid, unexpired link.
func (l *ApprovalLinks) check(token string) (runID int64, phase int, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 24+sha256.Size {
		return 0, 0, errLinkInvalid
	}
	mac := hmac.New(sha256.New, l.key)
	mac.Write(raw[:24])
	if !hmac.Equal(mac.Sum(nil), raw[24:]) {
		return 0, 0, errLinkInvalid
	}
	runID = int64(binary.BigEndian.Uint64(raw[0:]))
	phase = int(binary.BigEndian.Uint64(raw[8:]))
	if !l.now().Before(time.Unix(int64(binary.BigEndian.Uint64(raw[16:])), 0)) {
		return runID, phase, errLinkExpired
	}
	return runID, phase, nil
}

// approvalLinkHandlers open a signed link: the approvals page at the run,
// when the run still waits at that phase.
type approvalLinkHandlers struct {
	links *ApprovalLinks
	store ApprovalStore
}

func (h *approvalLinkHandlers) open(c echo.Context) error {
	runID, phase, err := h.links.check(c.Param("token"))
	switch {
	case errors.Is(err, errLinkExpired):
		return refusePage(c, http.StatusGone, fmt.Sprintf("%s (links last %s). Run %d may still be waiting: look for it on the approvals page.",
			err.Error(), ApprovalLinkTTL, runID))
	case err != nil:
		return refusePage(c, http.StatusBadRequest, err.Error()+". Open the approvals page to see what waits for you.")
	}
	run, err := h.store.Run(c.Request().Context(), runID)
	if err != nil {
		return refusePage(c, http.StatusNotFound, fmt.Sprintf("Run %d no longer exists.", runID))
	}
	if string(run.State) != "awaiting_approval" || run.PhaseIndex != phase {
		return c.Redirect(http.StatusSeeOther, "/runs/"+strconv.FormatInt(runID, 10)+"?from=approval-link")
	}
	return c.Redirect(http.StatusSeeOther, "/approvals#approval-"+strconv.FormatInt(runID, 10))
}
