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
// See https://developer.work.weixin.qq.com/document/path/90979 (batch
// import) and https://developer.work.weixin.qq.com/document/path/94849
// (export).
package wecom
