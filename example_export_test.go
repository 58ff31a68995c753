package wecom_test

import (
	"context"
	"fmt"
	"log"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/wecomtest"
)

// Export every member, wait for the job, and read the members back from
// the encrypted data files as a stream. The fake server stands in for
// WeCom here; with a real corp, drop WithBaseURL.
func ExampleClient_ExportedUsers() {
	srv := wecomtest.NewServer()
	defer srv.Close()
	_ = srv.AddMember(wecomtest.Member{UserID: "zhangsan", Name: "张三", Mobile: "13800000001", Gender: "1", Department: []int{1}})
	_ = srv.AddMember(wecomtest.Member{UserID: "lisi", Name: "李四", Email: "lisi@example.com", Gender: "2", Department: []int{1}})

	c, err := wecom.NewClient(srv.CorpID, srv.CorpSecret, wecom.WithBaseURL(srv.URL))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Keep the key: it is the only way to decrypt the result.
	key := wecom.NewEncodingAESKey()
	jobID, err := c.ExportUser(ctx, wecom.ExportRequest{EncodingAESKey: key})
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.WaitExportResult(ctx, jobID)
	if err != nil {
		log.Fatal(err)
	}
	for u, err := range c.ExportedUsers(ctx, res, key) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(u.UserID, u.Name, u.Gender, u.Department)
	}
	// Output:
	// lisi 李四 female [1]
	// zhangsan 张三 male [1]
}
