package templates

import "github.com/flightdeckhq/flightdeck/internal/auth"

// Page is what every page's frame needs: its title, who is looking, the
// form token and which item of the navigation is current.
type Page struct {
	Title string
	// Member is the person signed in; nil on the sign-in page.
	Member *auth.Member
	// CSRF goes into every form as _csrf, and into htmx requests as the
	// X-CSRF-Token header.
	CSRF string
	// Nav names the current navigation item: overview, live, approvals,
	// advisor, audit or users.
	Nav string
	// Flash is a one-line message shown above the page, such as the result
	// of an action; FlashError marks it as a refusal.
	Flash      string
	FlashError bool
}

// navItem is one entry of the top navigation.
type navItem struct {
	Key, Label, Href string
	AdminOnly        bool
}

var navItems = []navItem{
	{Key: "overview", Label: "Overview", Href: "/"},
	{Key: "live", Label: "Live", Href: "/live"},
	{Key: "approvals", Label: "Approvals", Href: "/approvals"},
	{Key: "advisor", Label: "Strategy advisor", Href: "/advisor"},
	{Key: "audit", Label: "Audit log", Href: "/audit"},
	{Key: "halt", Label: "Stop the line", Href: "/halt"},
	{Key: "users", Label: "Users", Href: "/users", AdminOnly: true},
	{Key: "notifications", Label: "Notifications", Href: "/notifications", AdminOnly: true},
}

func visibleNav(m *auth.Member) []navItem {
	var items []navItem
	for _, it := range navItems {
		if it.AdminOnly && (m == nil || !m.IsAdmin) {
			continue
		}
		items = append(items, it)
	}
	return items
}

// csrfHeaders is the hx-headers value that sends the form token with
// every htmx request of the page.
func csrfHeaders(token string) string {
	return `{"X-CSRF-Token": "` + token + `"}`
}
