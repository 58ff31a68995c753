// Package wecomtest is an in-process fake WeCom (企业微信) server for the
// contact batch-job APIs, so that clients, examples and users' own tests can
// run end to end without the internet.
//
//	srv := wecomtest.NewServer()
//	defer srv.Close()
//	// point a client at srv.URL with srv.CorpID / srv.CorpSecret
//
// It implements, with WeCom's JSON shapes, error codes and limits:
// gettoken (91039), media/upload (90389), batch/syncuser (91130),
// batch/replaceuser (91131), batch/replaceparty (91132), batch/getresult
// (90983), batch/invite (90975), export/simple_user, export/user and
// export/department (94849), export/taguser (94953), export/get_result
// (94954) and the batch_job_result callback (90973 import, 96298 export),
// where (n) is https://developer.work.weixin.qq.com/document/path/n.
// It does not import package wecom; it stands alone.
//
// A new server's directory holds the root department (id 1, named
// RootDepartmentName) and nothing else; seed it with AddDepartment,
// AddMember, AddTag and AddExtAttr, and inspect it with Departments,
// Members, Member and Tags. Requests lists what the server received.
// InjectFault and InjectRandomFaults make it misbehave; ExpireTokens and
// InvalidateTokens force token errors.
//
// # Choices where WeCom's behaviour is not documented ([U] in wecom-api.md)
//
//   - gettoken returns the same token while it is valid (expires_in = what
//     remains); ExpireTokens/InvalidateTokens or the clock force a new one.
//   - Unknown API path: HTTP 404 with errcode 40058. Wrong HTTP method:
//     HTTP 200 with errcode 40058.
//   - media/upload: a body that is not multipart, or has no part named
//     "media", answers 44001 (as an empty file does); 1–5 bytes → 40006.
//   - Import submissions are checked synchronously only for token, JSON
//     (40058), media_id (41006 missing, 40007 unknown/expired/not a file),
//     callback shape (40058) and the import lock (302008, one lock per corp
//     across the three import types). Everything about the file's content —
//     40092, 302003, 302004, 302006, 302007, 81002 and the 45026 deletion
//     guard — is the job's result: getresult answers status 3 with the
//     top-level errcode, errmsg and type, and the callback carries ErrCode.
//   - Member CSV: columns are mapped by header text (帐号 and 账号 both name
//     the userid); unknown columns are ignored unless registered with
//     AddExtAttr; a UTF-8 BOM is stripped; "\n" and "\r\n" and RFC-4180
//     quoting are accepted; blank lines are skipped; a header-only file is
//     40092. 性别 accepts 男/女 and also 1/2 (and 0); invalid values → per-row
//     40058. Bad 排序 → per-row 40058; bad 座机 → 301013.
//   - syncuser updates only fields whose column is present and whose cell
//     is non-empty; replaceuser takes every template field from the file
//     (empty clears) and keeps non-template fields. A failed row leaves its
//     member untouched (replaceuser does not delete it).
//   - Members created by an import get status 1 (active), or 2 when 禁用=1.
//   - Departments a member file references but the directory lacks are
//     created under OtherDepartmentName, named by their id.
//   - replaceparty: deletions are not listed in result; departments kept
//     because they are not empty are deleted after a later member import
//     empties them.
//   - Only the last KeepImportResults import jobs are kept (40089 for older,
//     40088 for unknown); export jobs are kept per WithMaxExportJobs.
//   - Export data URLs are signed at get_result time and valid ExportURLTTL;
//     expired or forged → HTTP 403 with a COS-style XML body. Each export
//     yields at least one file; taguser repeats tagname in every block.
//   - Callbacks: FromUserName "sys", AgentID empty, receiveid = corp id,
//     1 + 3 attempts by default; export events go to WithAppCallback only.
//     No URL-verification GET is made.
package wecomtest
