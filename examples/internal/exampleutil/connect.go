package exampleutil

import (
	"fmt"
	"os"
	"time"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// Environment variables that switch an example from the fake server to a
// real corp. The secret is the contact-sync secret (通讯录同步 Secret).
const (
	EnvCorpID     = "WECOM_CORP_ID"
	EnvCorpSecret = "WECOM_CORP_SECRET"
	EnvBaseURL    = "WECOM_BASE_URL" // optional; default wecom.DefaultBaseURL
)

// Env is where an example runs: the embedded fake WeCom server (Fake is
// set), or a real corp.
type Env struct {
	Client *wecom.Client
	Fake   *wecomtest.Server // nil against a real corp
	CorpID string
}

// Connect returns a client for the corp named by WECOM_CORP_ID and
// WECOM_CORP_SECRET when both are set, and otherwise starts a fake WeCom
// server (with fakeOpts) and returns a client for it.
func Connect(fakeOpts ...wecomtest.Option) (*Env, error) {
	corpID, secret := os.Getenv(EnvCorpID), os.Getenv(EnvCorpSecret)
	if corpID != "" && secret != "" {
		var opts []wecom.Option
		if u := os.Getenv(EnvBaseURL); u != "" {
			opts = append(opts, wecom.WithBaseURL(u))
		}
		c, err := wecom.NewClient(corpID, secret, opts...)
		if err != nil {
			return nil, err
		}
		return &Env{Client: c, CorpID: corpID}, nil
	}
	if corpID != "" || secret != "" {
		return nil, fmt.Errorf("set both %s and %s to use a real corp, or neither to use the fake server", EnvCorpID, EnvCorpSecret)
	}
	srv := wecomtest.NewServer(fakeOpts...)
	c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &Env{Client: c, Fake: srv, CorpID: srv.CorpID}, nil
}

// Real reports whether the client talks to a real corp.
func (e *Env) Real() bool { return e.Fake == nil }

// Close stops the fake server, if any.
func (e *Env) Close() {
	if e.Fake != nil {
		e.Fake.Close()
	}
}

// Describe says where the example runs, without any secret.
func (e *Env) Describe() string {
	if e.Real() {
		return fmt.Sprintf("corp %s (from %s; the secret is not shown)", e.CorpID, EnvCorpID)
	}
	return fmt.Sprintf("the embedded fake WeCom server (wecomtest) at %s, corp %s", e.Fake.URL, e.CorpID)
}

// Wait returns wait options: quick polling on the fake server, the
// library's defaults (0.5 s to 10 s) against a real corp, plus extra.
func (e *Env) Wait(extra ...wecom.WaitOption) []wecom.WaitOption {
	var w []wecom.WaitOption
	if !e.Real() {
		w = append(w, wecom.WithPollDelay(20*time.Millisecond, 200*time.Millisecond))
	}
	return append(w, extra...)
}

// SeedMembers adds members to the fake directory (nothing against a real
// corp). The members' departments must exist.
func (e *Env) SeedMembers(members []wecom.Member) error {
	if e.Fake == nil {
		return nil
	}
	for _, m := range members {
		if err := e.Fake.AddMember(FakeMember(m)); err != nil {
			return err
		}
	}
	return nil
}

// SeedDepartments adds departments to the fake directory, parents first
// (nothing against a real corp).
func (e *Env) SeedDepartments(depts []wecom.Department) error {
	if e.Fake == nil {
		return nil
	}
	for _, d := range depts {
		if d.ID == 1 {
			continue
		}
		if err := e.Fake.AddDepartment(wecomtest.Department{ID: d.ID, Name: d.Name, ParentID: d.ParentID, Order: d.Order}); err != nil {
			return err
		}
	}
	return nil
}

// FakeMember converts an import row to a member of the fake directory.
func FakeMember(m wecom.Member) wecomtest.Member {
	fm := wecomtest.Member{
		UserID: m.UserID, Name: m.Name, Mobile: m.Mobile, Email: m.Email,
		Department: m.Departments, Order: m.Order, Position: m.Position,
		Gender: fmt.Sprint(int(m.Gender)), Alias: m.Alias, Address: m.Address,
		Telephone: m.Telephone, ExtAttr: m.ExtAttrs,
	}
	for _, l := range m.IsLeaderInDept {
		v := 0
		if l {
			v = 1
		}
		fm.IsLeaderInDept = append(fm.IsLeaderInDept, v)
	}
	if m.Disabled {
		fm.Status = 2
	}
	return fm
}
