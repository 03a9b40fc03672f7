package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// PageStore is what the pages read and change, beyond sign-in; each page's
// file declares the part it needs. *store.Store implements it.
type PageStore interface {
	Catalog
	EnvironmentPages
	AdvisorPages
	UserPages
	ApprovalStore
	LiveStore
	AuditLog
	RunPageStore
	FlagPages
	GovernancePages
	NotificationPages
}

// registerPages installs sessions, form tokens and every page. Every page
// but sign-in needs a signed-in member; what a member may do on a page is
// checked by its handlers against the member's role.
func registerPages(e *echo.Echo, cfg Config) {
	e.Use(echo.WrapMiddleware(func(next http.Handler) http.Handler {
		sm := cfg.Sessions.LoadAndSave(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !isPageRequest(r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			sm.ServeHTTP(w, r)
		})
	}))
	e.Use(csrfProtection(cfg.SecureCookies))
	e.Use(loadMember(cfg.Sessions, cfg.Members))
	registerLive(e, cfg)

	login := &loginHandlers{sessions: cfg.Sessions, members: cfg.Members}
	e.GET("/login", login.showLogin)
	e.POST("/login", login.login)
	e.POST("/logout", login.logout, requireMember)
	registerOIDC(e, cfg)

	pages := e.Group("", requireMember)
	home := &homeHandlers{catalog: cfg.Pages}
	pages.GET("/", home.home)
	registerEnvironmentPages(pages, cfg)
	registerAdvisorPages(pages, cfg)
	registerUserPages(pages, cfg)
	registerRunPages(pages, cfg)
	registerFlagPages(pages, cfg)
	approvals := &approvalHandlers{store: cfg.Pages, runs: cfg.Runs, sessions: cfg.Sessions, links: cfg.ApprovalLinks}
	if cfg.ApprovalLinks != nil {
		links := &approvalLinkHandlers{links: cfg.ApprovalLinks, store: cfg.Pages}
		pages.GET(approvalLinkRoute, links.open)
	}
	pages.GET("/approvals", approvals.approvals)
	pages.POST("/approvals/:run/approve", approvals.approve)
	pages.POST("/approvals/:run/reject", approvals.reject)
	liveView := &liveHandlers{store: cfg.Pages, runs: cfg.Runs, sessions: cfg.Sessions}
	pages.GET("/live", liveView.live)
	pages.POST("/live/runs/:id/abort", liveView.abort)
	pages.POST("/live/runs/:id/rollback", liveView.rollback)
	registerAuditPages(pages, cfg)
	registerGovernancePages(pages, cfg)
	registerNotificationPages(pages, cfg)
}
