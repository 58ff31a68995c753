// Package wecom is a client for WeCom (企业微信) contact batch jobs: bulk
// import of members and departments from CSV (incremental sync or full
// replace), bulk export of the directory, and the encrypted callbacks that
// report when a job is done.
//
// It does the whole flow, not just the request: it builds and validates the
// CSV templates, uploads them, submits the job, waits for it (by polling or
// by callback), downloads, verifies and decrypts export files as a stream,
// and parses the completion event.
//
// # Getting started
//
// Create one [Client] per corp and contact-sync secret, and share it:
//
//	client, err := wecom.NewClient(corpID, contactSyncSecret)
//	if err != nil { … }
//
//	// Import: validate, write the CSV template, upload, submit, wait.
//	res, err := client.ImportMembers(ctx, wecom.ImportSync, []wecom.Member{
//		{UserID: "zhangsan", Name: "张三", Mobile: "13800000000", Departments: []int{1}},
//	}, wecom.ImportOptions{})
//	if err != nil { … }
//	for _, item := range res.Failed() { // rows WeCom rejected, with their codes
//		log.Printf("%s: %d %s", item.UserID, item.ErrCode, item.ErrMsg)
//	}
//
//	// Export: start a job with a fresh key, wait, decrypt as a stream.
//	job, err := client.StartExport(ctx, wecom.ExportKindUser, 0, wecom.ExportRequest{})
//	if err != nil { … }
//	done, err := client.WaitExportResult(ctx, job.JobID)
//	if err != nil { … }
//	for u, err := range client.ExportedUsers(ctx, done, job.EncodingAESKey) {
//		if err != nil { … }
//		fmt.Println(u.UserID, u.Name, u.Department)
//	}
//
// # The pieces
//
//   - Import: [Client.ImportMembers] and [Client.ImportDepartments] do the
//     whole flow; [WriteMembersCSV], [Client.UploadFile], [Client.SyncUser],
//     [Client.ReplaceUser], [Client.ReplaceParty] and [Client.WaitBatchResult]
//     are the steps, for those who need them separately.
//     [Client.PlanReplaceMembers] previews a replace; ImportOptions.MaxDeletes
//     refuses one that would delete too many (its zero value refuses any
//     deletion).
//   - Export: [Client.StartExport], [Client.WaitExportResult],
//     [Client.ExportedUsers], [Client.ExportedDepartments],
//     [Client.ExportedTagUsers], and [Client.OpenExportFile] for raw JSON.
//   - Callbacks: [NewCallbackCrypto], [NewCallbackHandler], and a
//     [JobNotifier] that wakes waiters ([WithNotifier]) when the event comes.
//   - Errors: *[APIError] (a WeCom errcode), *[JobError] (a job that failed as
//     a whole), *[CSVError] (bad input, before any network call), *[WaitError]
//     (ctx ended first), and sentinels for errors.Is; [IsCode] tests a code.
//   - Configuration: [WithTokenStore] (package redisstore shares tokens
//     across replicas), [WithLogger] (silent by default, never logs secrets),
//     [WithRetry], [WithHTTPClient], [WithBaseURL].
//
// Package wecomtest is an in-process fake WeCom server for tests: the
// examples in this documentation run against it.
//
// See https://developer.work.weixin.qq.com/document/path/90979 (batch
// import) and https://developer.work.weixin.qq.com/document/path/94849
// (export).
package wecom
