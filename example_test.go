package wecom_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// These examples run against wecomtest, the in-process fake WeCom server;
// against the real one, leave out WithBaseURL and pass your corp id and
// contact-sync secret.

// fastPoll suits the fake server; against WeCom the defaults (0.5 s to
// 10 s) are right.
var fastPoll = wecom.WithPollDelay(10*time.Millisecond, 100*time.Millisecond)

func ExampleNewClient() {
	srv := wecomtest.NewServer()
	defer srv.Close()

	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret,
		wecom.WithBaseURL(srv.URL), // omit for https://qyapi.weixin.qq.com
		wecom.WithRetry(wecom.RetryPolicy{MaxAttempts: 5}),
	)
	if err != nil {
		log.Fatal(err)
	}
	token, err := client.AccessToken(context.Background()) // cached and refreshed for you
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.CorpID(), token != "")

	_, err = wecom.NewClient("", "secret") // validated, no network call
	fmt.Println(err != nil)
	// Output:
	// wwfakecorp0000001 true
	// true
}

// The step-by-step import: write the template, upload it, submit, wait.
// Client.ImportMembers does all of this in one call.
func ExampleClient_UploadFile() {
	srv := wecomtest.NewServer()
	defer srv.Close()
	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	var csv bytes.Buffer
	if err := wecom.WriteMembersCSV(&csv, []wecom.Member{
		{UserID: "zhangsan", Name: "张三", Email: "zhangsan@example.com", Departments: []int{1}},
	}); err != nil {
		log.Fatal(err)
	}
	media, err := client.UploadFile(ctx, "members.csv", &csv)
	if err != nil {
		log.Fatal(err)
	}
	jobID, err := client.SyncUser(ctx, wecom.SyncUserRequest{MediaID: media.MediaID})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.WaitBatchResult(ctx, jobID, fastPoll)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(media.Type, res.Type, res.Status, len(res.Failed()))
	// Output:
	// file sync_user done 0
}

func ExampleClient_WaitBatchResult() {
	srv := wecomtest.NewServer(wecomtest.WithJobStepDelay(5 * time.Millisecond))
	defer srv.Close()
	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var csv bytes.Buffer
	members := make([]wecom.Member, 100)
	for i := range members {
		members[i] = wecom.Member{UserID: fmt.Sprintf("user%03d", i), Name: "成员", Email: fmt.Sprintf("user%03d@example.com", i), Departments: []int{1}}
	}
	if err := wecom.WriteMembersCSV(&csv, members); err != nil {
		log.Fatal(err)
	}
	media, err := client.UploadFile(ctx, "members.csv", &csv)
	if err != nil {
		log.Fatal(err)
	}
	jobID, err := client.SyncUser(ctx, wecom.SyncUserRequest{MediaID: media.MediaID})
	if err != nil {
		log.Fatal(err)
	}

	last := -1
	res, err := client.WaitBatchResult(ctx, jobID, fastPoll,
		wecom.WithProgress(func(pct int) { last = pct })) // e.g. draw a progress bar
	var waitErr *wecom.WaitError
	if errors.As(err, &waitErr) {
		log.Fatalf("gave up at %d%%: %v", waitErr.Percentage, err)
	} else if err != nil {
		log.Fatal(err) // a *wecom.JobError if the job failed as a whole
	}
	fmt.Println(res.Status, res.Total, "rows, last progress", last)
	// Output:
	// done 100 rows, last progress 100
}

// Export the directory: the job's data files are encrypted with the key
// StartExport chose, and ExportedUsers decrypts them as a stream.
func ExampleClient_StartExport() {
	srv := wecomtest.NewServer()
	defer srv.Close()
	for _, m := range []wecomtest.Member{
		{UserID: "lisi", Name: "李四", Email: "lisi@example.com", Department: []int{1}},
		{UserID: "zhangsan", Name: "张三", Mobile: "13800000000", Department: []int{1}},
	} {
		if err := srv.AddMember(m); err != nil {
			log.Fatal(err)
		}
	}
	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	job, err := client.StartExport(ctx, wecom.ExportKindUser, 0, wecom.ExportRequest{})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.WaitExportResult(ctx, job.JobID, fastPoll)
	if err != nil {
		log.Fatal(err)
	}
	for u, err := range client.ExportedUsers(ctx, res, job.EncodingAESKey) {
		if err != nil {
			log.Fatal(err) // download, checksum, decryption or JSON errors
		}
		fmt.Println(u.UserID, u.Name, u.Mobile, u.Email)
	}
	// Output:
	// lisi 李四  lisi@example.com
	// zhangsan 张三 13800000000
}

// Preview a replace import before running it.
func ExampleClient_PlanReplaceMembers() {
	srv := wecomtest.NewServer()
	defer srv.Close()
	for _, id := range []string{"alice", "bob"} {
		if err := srv.AddMember(wecomtest.Member{UserID: id, Name: id, Email: id + "@example.com", Department: []int{1}}); err != nil {
			log.Fatal(err)
		}
	}
	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}
	plan, err := client.PlanReplaceMembers(context.Background(), []wecom.Member{
		{UserID: "alice", Name: "Alice", Email: "alice@example.com", Departments: []int{1}},
		{UserID: "carol", Name: "Carol", Email: "carol@example.com", Departments: []int{1}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("create", plan.Create, "update", plan.Update, "delete", plan.Delete)
	fmt.Println("of", plan.Current, "members; WeCom's 45026 guard would trip:", plan.TripsGuard)
	// Output:
	// create [carol] update [alice] delete [bob]
	// of 2 members; WeCom's 45026 guard would trip: false
}

// WeCom's errors are *APIError values with its errcode; IsCode and
// errors.As find them through any wrapping.
func ExampleIsCode() {
	srv := wecomtest.NewServer()
	defer srv.Close()
	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.GetBatchResult(context.Background(), "no-such-job")
	var apiErr *wecom.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Code, apiErr.Path)
	}
	fmt.Println(wecom.IsCode(err, wecom.CodeJobNotFound))
	// Output:
	// 40088 /cgi-bin/batch/getresult
	// true
}
