// Command sync-users imports members from a file into WeCom, as an
// incremental sync (batch/syncuser) or a full replace (batch/replaceuser),
// and prints the per-row results.
//
//	go run ./examples/sync-users                      # the sample file, on the fake server
//	go run ./examples/sync-users -file staff.csv -mode replace -max-deletes 10
//
// Without WECOM_CORP_ID and WECOM_CORP_SECRET it runs on the embedded fake
// WeCom server (package wecomtest), seeded with two departments and three
// members; with them, against that corp (WECOM_BASE_URL overrides the API
// host).
//
// Flags:
//
//	-file path          members to import: a CSV in WeCom's member template
//	                    (.csv), or a JSON array of wecom.Member (.json);
//	                    default: the embedded testdata/members.csv
//	-mode sync|replace  sync creates and updates; replace also DELETES the
//	                    members missing from the file (default sync)
//	-max-deletes n      replace only: refuse if more than n members would be
//	                    deleted (default 0: delete nobody; -1: no client-side
//	                    guard, only WeCom's own 45026)
//	-invite[=bool]      send invitations to new members; unset leaves WeCom's
//	                    default (invite)
//	-callback-url url   ask WeCom to POST the batch_job_result event there
//	-callback-token t   the callback's token (1-32 letters and digits)
//	-callback-key k     the callback's EncodingAESKey (43 characters)
//	-timeout d          give up after d (default 5m)
package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/examples/internal/exampleutil"
	"github.com/wecomkit/wecom/wecomtest"
)

//go:embed testdata/members.csv
var sampleMembers []byte

type options struct {
	file                            string
	mode                            string
	maxDeletes                      int
	invite                          optionalBool
	callbackURL, callbackToken, key string
	timeout                         time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.file, "file", "", "members file: WeCom member template `.csv`, or a JSON array of wecom.Member (.json); default: the sample")
	flag.StringVar(&o.mode, "mode", "sync", "sync or replace")
	flag.IntVar(&o.maxDeletes, "max-deletes", 0, "replace: most members that may be deleted (-1: no client-side guard)")
	flag.Var(&o.invite, "invite", "send invitations to new members (unset: WeCom's default)")
	flag.StringVar(&o.callbackURL, "callback-url", "", "URL WeCom POSTs the batch_job_result event to")
	flag.StringVar(&o.callbackToken, "callback-token", "", "callback token")
	flag.StringVar(&o.key, "callback-key", "", "callback EncodingAESKey")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	err := run(ctx, o)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sync-users:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	var mode wecom.ImportMode
	switch o.mode {
	case "sync":
		mode = wecom.ImportSync
	case "replace":
		mode = wecom.ImportReplace
	default:
		return fmt.Errorf("-mode must be sync or replace, got %q", o.mode)
	}
	members, err := readMembers(o.file)
	if err != nil {
		return err
	}
	opts := wecom.ImportOptions{ToInvite: o.invite.v, MaxDeletes: o.maxDeletes}
	if o.callbackURL != "" || o.callbackToken != "" || o.key != "" {
		opts.Callback = &wecom.JobCallback{URL: o.callbackURL, Token: o.callbackToken, EncodingAESKey: o.key}
	}

	env, err := exampleutil.Connect(wecomtest.WithJobStepDelay(20 * time.Millisecond))
	if err != nil {
		return err
	}
	defer env.Close()
	fmt.Println("sync-users: running against", env.Describe())
	if err := env.SeedDepartments(seedDepartments); err != nil {
		return err
	}
	if err := env.SeedMembers(seedMembers); err != nil {
		return err
	}

	if mode == wecom.ImportReplace {
		plan, err := env.Client.PlanReplaceMembers(ctx, members)
		if err != nil {
			return err
		}
		fmt.Printf("replace plan: %d current members; create %d, update %d, delete %d %v; WeCom's guard would trip: %v\n",
			plan.Current, len(plan.Create), len(plan.Update), len(plan.Delete), plan.Delete, plan.TripsGuard)
	}

	bar := exampleutil.NewProgress(os.Stdout, o.mode)
	opts.Wait = env.Wait(bar.Option())
	res, err := env.Client.ImportMembers(ctx, mode, members, opts)
	bar.Done()
	var csvErr *wecom.CSVError
	var tooMany *wecom.TooManyDeletesError
	switch {
	case errors.As(err, &csvErr):
		return fmt.Errorf("the file is not valid (nothing was uploaded): %w", err)
	case errors.As(err, &tooMany):
		return fmt.Errorf("%w; raise -max-deletes to at least %d to accept it", err, len(tooMany.Plan.Delete))
	case err != nil:
		return err
	}
	failed := res.Failed()
	fmt.Printf("%s job done: %d rows, %d ok, %d failed\n", res.Type, res.Total, res.Total-len(failed), len(failed))
	if len(failed) > 0 {
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "USERID\tERRCODE\tERRMSG")
		for _, it := range failed {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", it.UserID, it.ErrCode, it.ErrMsg)
		}
		tw.Flush()
	}
	if env.Fake != nil {
		var ids []string
		for _, m := range env.Fake.Members() {
			ids = append(ids, m.UserID)
		}
		fmt.Printf("the fake directory now has %d members: %s\n", len(ids), strings.Join(ids, ", "))
	}
	return nil
}

func readMembers(path string) ([]wecom.Member, error) {
	if path == "" {
		return exampleutil.ReadMembersCSV(bytes.NewReader(sampleMembers))
	}
	return exampleutil.ReadMembersFile(path)
}
