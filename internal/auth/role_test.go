package auth

import "testing"

func TestMemberRoles(t *testing.T) {
	m := Member{Username: "rita", Bindings: []Binding{
		{App: "*", Environment: "staging", Role: RoleDeployer},
		{App: "checkout", Environment: "production", Role: RoleApprover},
		{App: "checkout", Environment: "*", Role: RoleViewer},
	}}
	cases := []struct {
		app, env string
		want     Role
	}{
		{"checkout", "production", RoleApprover},
		{"checkout", "staging", RoleDeployer},
		{"search", "staging", RoleDeployer},
		{"search", "production", RoleViewer},
		{"checkout", "qa", RoleViewer},
	}
	for _, c := range cases {
		if got := m.RoleOn(c.app, c.env); got != c.want {
			t.Errorf("RoleOn(%s, %s) = %s, want %s", c.app, c.env, got, c.want)
		}
	}
	if m.Can("search", "production", RoleDeployer) {
		t.Error("a viewer on search/production may deploy there")
	}
	if !m.Can("checkout", "production", RoleDeployer) {
		t.Error("an approver may not deploy: roles must include the weaker ones")
	}
	if m.Can("checkout", "production", RoleAdmin) {
		t.Error("an approver may change settings")
	}
	admin := Member{Username: "ada", IsAdmin: true}
	if !admin.Can("anything", "production", RoleAdmin) {
		t.Error("an administrator may not administer every environment")
	}
	if !m.CanAnywhere(RoleApprover) || m.CanAnywhere(RoleAdmin) {
		t.Error("CanAnywhere does not follow the bindings")
	}
}

func TestParseRole(t *testing.T) {
	if r, err := ParseRole("approver"); err != nil || r != RoleApprover {
		t.Fatalf("ParseRole(approver) = %v, %v", r, err)
	}
	if _, err := ParseRole("owner"); err == nil {
		t.Fatal("ParseRole accepted an unknown role")
	}
	if Role("owner").Includes(RoleViewer) || RoleAdmin.Includes(Role("owner")) {
		t.Fatal("an unknown role takes part in the order")
	}
}
