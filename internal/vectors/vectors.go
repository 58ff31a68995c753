// Package vectors loads the published test vectors in ../shared/vectors
// (beside the module root) for the tests of any package in this module.
package vectors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Callback is callback_official.json: WeCom's published sample of the
// callback encryption scheme (https://developer.work.weixin.qq.com/document/path/91144).
type Callback struct {
	Token          string `json:"token"`
	EncodingAESKey string `json:"encoding_aes_key"`
	ReceiverID     string `json:"receiver_id"`
	VerifyURL      struct {
		MsgSignature string `json:"msg_signature"`
		Timestamp    string `json:"timestamp"`
		Nonce        string `json:"nonce"`
		Echostr      string `json:"echostr"`
		Plaintext    string `json:"plaintext"`
	} `json:"verify_url"`
	Post struct {
		MsgSignature string `json:"msg_signature"`
		Timestamp    string `json:"timestamp"`
		Nonce        string `json:"nonce"`
		Body         string `json:"body"`
		Plaintext    string `json:"plaintext"`
	} `json:"post"`
}

// Export is export_example.json: one export data file made with the
// documented encryption.
type Export struct {
	EncodingAESKey   string `json:"encoding_aes_key"`
	Plaintext        string `json:"plaintext"`
	CiphertextBase64 string `json:"ciphertext_base64"`
	MD5              string `json:"md5"`
	Size             int64  `json:"size"`
}

// LoadCallback loads callback_official.json, skipping t when it is absent.
func LoadCallback(t testing.TB) Callback {
	var v Callback
	load(t, "callback_official.json", &v)
	return v
}

// LoadExport loads export_example.json, skipping t when it is absent.
func LoadExport(t testing.TB) Export {
	var v Export
	load(t, "export_example.json", &v)
	return v
}

// load finds the module root (the directory holding go.mod) above the
// test's working directory and reads ../shared/vectors/name beside it.
func load(t testing.TB, name string, v any) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skipf("shared vectors not available: no go.mod above the test directory")
		}
		dir = parent
	}
	path := filepath.Join(dir, "..", "shared", "vectors", name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("shared vectors not available (want %s): %v", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
