package wecomtest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// In your own tests: start a server, seed its directory, point your
// client at it, then assert on the directory and on what it received.
func ExampleNewServer() {
	srv := wecomtest.NewServer() // in a test: defer srv.Close() or t.Cleanup(srv.Close)
	defer srv.Close()
	if err := srv.AddDepartment(wecomtest.Department{ID: 2, Name: "研发", ParentID: 1}); err != nil {
		log.Fatal(err)
	}
	if err := srv.AddMember(wecomtest.Member{UserID: "zhangsan", Name: "张三", Mobile: "13800000000", Department: []int{2}}); err != nil {
		log.Fatal(err)
	}

	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.ImportMembers(context.Background(), wecom.ImportSync, []wecom.Member{
		{UserID: "lisi", Name: "李四", Mobile: "13800000000", Departments: []int{2}}, // zhangsan's mobile
		{UserID: "wangwu", Name: "王五", Email: "wangwu@example.com", Departments: []int{2}},
	}, wecom.ImportOptions{Wait: []wecom.WaitOption{wecom.WithPollDelay(10*time.Millisecond, 100*time.Millisecond)}})
	if err != nil {
		log.Fatal(err)
	}
	for _, it := range res.Failed() {
		fmt.Println("failed:", it.UserID, it.ErrCode)
	}
	fmt.Println("members:", srv.MemberCount())
	fmt.Println("gettoken calls:", srv.CallCount("/cgi-bin/gettoken"))
	// Output:
	// failed: lisi 60104
	// members: 2
	// gettoken calls: 1
}

// Faults make the server misbehave for the next calls of a path; the
// client's retries and token handling can then be tested.
func ExampleServer_InjectFault() {
	srv := wecomtest.NewServer()
	defer srv.Close()
	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL),
		wecom.WithRetry(wecom.RetryPolicy{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Two "system busy" answers: a read retries through them.
	srv.InjectFault("/cgi-bin/export/get_result", wecomtest.Fault{ErrCode: -1, Times: 2})
	_, err = client.GetExportResult(ctx, "no-such-job")
	fmt.Println(wecom.IsCode(err, 40088), srv.CallCount("/cgi-bin/export/get_result"))

	// An expired token is refreshed once and the call repeated.
	srv.ExpireTokens()
	_, err = client.GetExportResult(ctx, "no-such-job")
	fmt.Println(wecom.IsCode(err, 40088), srv.TokenCount())

	// A fault that outlasts the retries comes back as an *APIError.
	srv.InjectFault("/cgi-bin/export/get_result", wecomtest.Fault{ErrCode: 45009, Times: -1})
	_, err = client.GetExportResult(ctx, "no-such-job")
	var apiErr *wecom.APIError
	fmt.Println(errors.As(err, &apiErr) && apiErr.Code == 45009)
	// Output:
	// true 3
	// true 2
	// true
}
