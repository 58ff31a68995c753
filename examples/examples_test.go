package examples_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecomkit/wecom/wecomtest"
)

// The examples are programs, not tests, so nothing else would notice them
// rot: build each one and run it with its default flags on the fake
// server, as a newcomer would, and check the lines that matter.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	buildOut  []byte
)

// build compiles every example into one temporary directory, once.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		binDir, buildErr = os.MkdirTemp("", "wecom-examples-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command(goTool, "build", "-o", binDir+string(filepath.Separator),
			"./quickstart", "./sync-users", "./export-users", "./callback-server")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func TestExamplesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example programs")
	}
	tests := []struct {
		name  string
		args  []string
		limit time.Duration // what a newcomer may wait
		want  []string
	}{
		{"quickstart", nil, 30 * time.Second, []string{
			"30 rows, 30 departments created, 0 failed",
			"refused before upload: wecom: csv row 1, column \"手机号\"",
			"2000 rows: 1997 imported, 3 rejected by WeCom",
			"emp0137  60104",
			"emp0842  60106",
			"emp1555  60105",
			"DELETE 5",
			"to be deleted: chenjing, liuyang, lixiuying, wangjianguo, zhangwei",
			"refused before upload: wecom: replace import refused: it would delete 5 members, MaxDeletes is 0",
			"2002 members and 31 departments decrypted",
			"销售中心",
			"members              2002 (active 2002)",
			"done in",
		}},
		{"sync-users", nil, 30 * time.Second, []string{
			"sync_user job done: 6 rows, 5 ok, 1 failed",
			"sunqi   60104",
			"the fake directory now has 7 members",
		}},
		{"export-users", []string{"-format", "csv"}, 30 * time.Second, []string{
			"userid,name,department,main_department,position,mobile,email,gender,status",
			"user25,成员25,",
			"25 user records from 1 data file(s)",
		}},
		{"callback-server", nil, 30 * time.Second, []string{
			"(sync_user) finished: errcode 0",
			"(woken by the callback): 2 rows, 0 failed",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bin := filepath.Join(build(t), tt.name)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			// The fake server, whatever the developer's shell has set.
			cmd.Env = append(os.Environ(), "WECOM_CORP_ID=", "WECOM_CORP_SECRET=", "WECOM_BASE_URL=")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			if err != nil {
				t.Fatalf("%s: %v after %v\n%s", tt.name, err, took, out)
			}
			if took > tt.limit {
				t.Errorf("%s took %v, want under %v", tt.name, took, tt.limit)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s output lacks %q\n%s", tt.name, w, out)
				}
			}
		})
	}
}

// TestQuickstartRealCorpMode runs the quickstart as against a real corp
// (WECOM_CORP_ID, WECOM_CORP_SECRET, WECOM_BASE_URL), played by a second
// fake server that already has departments: they must survive, mobiles
// must not be sent, and the replace must be refused without -allow-replace.
func TestQuickstartRealCorpMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example programs")
	}
	t.Parallel()
	srv := wecomtest.NewServer(wecomtest.WithCorp("wwrealcorp", "s3cretValue"))
	defer srv.Close()
	if err := srv.AddDepartment(wecomtest.Department{ID: 7, Name: "已有部门", ParentID: 1}); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(build(t), "quickstart")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "WECOM_CORP_ID="+srv.CorpID, "WECOM_CORP_SECRET="+srv.CorpSecret, "WECOM_BASE_URL="+srv.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	for _, w := range []string{
		"keeping the corp's 2 departments; the demo's get ids from 8",
		"2000 rows: 1999 imported, 1 rejected", // 60105 still; no 60104/60106 without the seed
		"not running it against a real corp without -allow-replace",
		"已有部门",
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %q\n%s", w, out)
		}
	}
	if strings.Contains(string(out), srv.CorpSecret) {
		t.Error("the output shows the secret")
	}
	if d, ok := srv.Department(7); !ok || d.Name != "已有部门" {
		t.Errorf("the corp's department 7 is gone or changed: %+v", d)
	}
	for _, m := range srv.Members() {
		if m.Mobile != "" {
			t.Fatalf("member %s was sent a mobile", m.UserID)
		}
	}
}
