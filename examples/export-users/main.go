// Command export-users exports the WeCom directory (export/user,
// export/simple_user or export/department), decrypts the data files and
// writes the records as JSON Lines or CSV.
//
//	go run ./examples/export-users                          # JSON Lines on stdout, fake server
//	go run ./examples/export-users -format csv -o users.csv
//	go run ./examples/export-users -kind department
//
// Without WECOM_CORP_ID and WECOM_CORP_SECRET it runs on the embedded fake
// WeCom server (package wecomtest), seeded with a few departments and 25
// members; with them, against that corp (WECOM_BASE_URL overrides the API
// host). The data files are streamed: memory does not grow with the size
// of the directory.
//
// Flags:
//
//	-kind user|simple_user|department  what to export (default user)
//	-format jsonl|csv                  output format (default jsonl)
//	-o file                            output file (default "-": stdout)
//	-timeout d                         give up after d (default 10m)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/examples/internal/exampleutil"
	"github.com/wecomkit/wecom/wecomtest"
)

func main() {
	kind := flag.String("kind", "user", "user, simple_user or department")
	format := flag.String("format", "jsonl", "jsonl or csv")
	out := flag.String("o", "-", "output file; - is stdout")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	err := run(ctx, *kind, *format, *out)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "export-users:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kindName, format, out string) error {
	var kind wecom.ExportKind
	switch kindName {
	case "user":
		kind = wecom.ExportKindUser
	case "simple_user":
		kind = wecom.ExportKindSimpleUser
	case "department":
		kind = wecom.ExportKindDepartment
	default:
		return fmt.Errorf("-kind must be user, simple_user or department, got %q", kindName)
	}
	if format != "jsonl" && format != "csv" {
		return fmt.Errorf("-format must be jsonl or csv, got %q", format)
	}

	env, err := exampleutil.Connect(wecomtest.WithJobStepDelay(10 * time.Millisecond))
	if err != nil {
		return err
	}
	defer env.Close()
	fmt.Fprintln(os.Stderr, "export-users: running against", env.Describe())
	if err := seed(env); err != nil {
		return err
	}

	// The job and the key its files are encrypted with go together.
	job, err := env.Client.StartExport(ctx, kind, 0, wecom.ExportRequest{EncodingAESKey: wecom.NewEncodingAESKey()})
	if err != nil {
		return err
	}
	res, err := env.Client.WaitExportResult(ctx, job.JobID, env.Wait()...)
	if err != nil {
		return err
	}

	var w io.Writer = os.Stdout
	var f *os.File
	if out != "-" {
		if f, err = os.Create(out); err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	var n int
	if kind == wecom.ExportKindDepartment {
		n, err = writeDepartments(bw, format, env.Client.ExportedDepartments(ctx, res, job.EncodingAESKey))
	} else {
		n, err = writeUsers(bw, format, env.Client.ExportedUsers(ctx, res, job.EncodingAESKey))
	}
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "export-users: %d %s records from %d data file(s) written to %s\n", n, kind, len(res.DataList), out)
	return nil
}

// seed fills the fake directory (nothing against a real corp).
func seed(env *exampleutil.Env) error {
	if err := env.SeedDepartments([]wecom.Department{
		{Name: "研发部", ID: 2, ParentID: 1},
		{Name: "后端组", ID: 3, ParentID: 2},
		{Name: "销售部", ID: 4, ParentID: 1},
	}); err != nil {
		return err
	}
	var ms []wecom.Member
	for i := range 25 {
		ms = append(ms, wecom.Member{
			UserID: fmt.Sprintf("user%02d", i+1), Name: fmt.Sprintf("成员%02d", i+1),
			Email: fmt.Sprintf("user%02d@example.com", i+1), Departments: []int{2 + i%3},
			Position: "工程师", Gender: wecom.Gender(1 + i%2),
		})
	}
	return env.SeedMembers(ms)
}
