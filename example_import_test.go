package wecom_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// ImportMembers does the whole import: validate, CSV, upload, submit,
// wait. Rows WeCom rejected are in the result, with their error codes.
func ExampleClient_ImportMembers() {
	// A fake WeCom with one member; use your corp id and contact-sync
	// secret against the real one.
	srv := wecomtest.NewServer()
	defer srv.Close()
	if err := srv.AddMember(wecomtest.Member{UserID: "zhangsan", Name: "张三", Mobile: "13800000001", Department: []int{1}}); err != nil {
		log.Fatal(err)
	}
	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}

	members := []wecom.Member{
		{UserID: "zhangsan", Name: "张三", Mobile: "13800000001", Departments: []int{1}, Position: "经理"},
		{UserID: "lisi", Name: "李四", Email: "lisi@example.com", Departments: []int{1}},
		{UserID: "wangwu", Name: "王五", Mobile: "13800000001", Departments: []int{1}}, // zhangsan's mobile
	}
	noInvite := false
	res, err := client.ImportMembers(context.Background(), wecom.ImportSync, members, wecom.ImportOptions{
		ToInvite: &noInvite,
		Wait:     []wecom.WaitOption{wecom.WithPollDelay(10*time.Millisecond, 100*time.Millisecond)},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Type, res.Status, res.Total)
	for _, item := range res.Failed() {
		fmt.Println("failed:", item.UserID, item.ErrCode)
	}
	// Output:
	// sync_user done 3
	// failed: wangwu 60104
}

// ImportDepartments replaces the department tree; departments that still
// have members are kept.
func ExampleClient_ImportDepartments() {
	srv := wecomtest.NewServer()
	defer srv.Close()
	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}
	depts := []wecom.Department{
		{Name: "研发", ID: 2, ParentID: 1},
		{Name: "后端", ID: 3, ParentID: 2},
	}
	res, err := client.ImportDepartments(context.Background(), depts, wecom.ImportOptions{
		Wait: []wecom.WaitOption{wecom.WithPollDelay(10*time.Millisecond, 100*time.Millisecond)},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, item := range res.Items {
		fmt.Println(item.PartyID, item.Action)
	}
	// Output:
	// 2 created
	// 3 created
}

// A replace import deletes every member missing from the file. The zero
// ImportOptions refuses to delete anyone: the directory is exported and
// compared first, and nothing is uploaded when someone would go.
func ExampleClient_ImportMembers_replace() {
	srv := wecomtest.NewServer()
	defer srv.Close()
	for _, id := range []string{"alice", "bob", "carol"} {
		if err := srv.AddMember(wecomtest.Member{UserID: id, Name: id, Email: id + "@example.com", Department: []int{1}}); err != nil {
			log.Fatal(err)
		}
	}
	client, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	wait := []wecom.WaitOption{wecom.WithPollDelay(10*time.Millisecond, 100*time.Millisecond)}
	members := []wecom.Member{
		{UserID: "alice", Name: "Alice", Email: "alice@example.com", Departments: []int{1}},
		{UserID: "dave", Name: "Dave", Email: "dave@example.com", Departments: []int{1}},
	}

	_, err = client.ImportMembers(ctx, wecom.ImportReplace, members, wecom.ImportOptions{Wait: wait})
	var tooMany *wecom.TooManyDeletesError
	if errors.As(err, &tooMany) {
		fmt.Println("refused; would create", tooMany.Plan.Create, "and delete", tooMany.Plan.Delete)
	}

	// Accept up to two deletions.
	res, err := client.ImportMembers(ctx, wecom.ImportReplace, members, wecom.ImportOptions{MaxDeletes: 2, Wait: wait})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Type, res.Status, "members now:", srv.MemberCount())
	// Output:
	// refused; would create [dave] and delete [bob carol]
	// replace_user done members now: 2
}
