package wxcrypto

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/wecomkit/wecom/internal/vectors"
)

func TestOfficialCallbackVectors(t *testing.T) {
	t.Parallel()
	v := vectors.LoadCallback(t)
	key, err := DecodeKey(v.EncodingAESKey)
	if err != nil {
		t.Fatal(err)
	}
	vu := v.VerifyURL
	if !VerifySignature(v.Token, vu.Timestamp, vu.Nonce, vu.Echostr, vu.MsgSignature) {
		t.Fatal("GET signature does not verify")
	}
	msg, rid, err := DecryptMessage(key, vu.Echostr)
	if err != nil || string(msg) != vu.Plaintext || rid != v.ReceiverID {
		t.Fatalf("GET decrypt = %q %q %v", msg, rid, err)
	}
	// POST: the Encrypt element of the body.
	body := v.Post.Body
	i := strings.Index(body, "<Encrypt><![CDATA[") + len("<Encrypt><![CDATA[")
	j := strings.Index(body[i:], "]]>")
	enc := body[i : i+j]
	if !VerifySignature(v.Token, v.Post.Timestamp, v.Post.Nonce, enc, v.Post.MsgSignature) {
		t.Fatal("POST signature does not verify")
	}
	msg, rid, err = DecryptMessage(key, enc)
	if err != nil || string(msg) != v.Post.Plaintext || rid != v.ReceiverID {
		t.Fatalf("POST decrypt = %q %q %v", msg, rid, err)
	}
}

func TestBatchJobFixture(t *testing.T) {
	t.Parallel()
	key, _ := DecodeKey("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")
	msg := `<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[batch_job_result]]></Event><BatchJob><JobId><![CDATA[S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4]]></JobId><JobType><![CDATA[replace_user]]></JobType><ErrCode>0</ErrCode><ErrMsg><![CDATA[ok]]></ErrMsg></BatchJob></xml>`
	enc, err := EncryptMessage(key, []byte("0123456789abcdef"), []byte(msg), "wx5823bf96d3bd56c7")
	if err != nil {
		t.Fatal(err)
	}
	want := "sKqRbbiSUnDhFHOvPjtUMYmx6oYRucFXNVJTOZKezNE+NHch0c4F/+XQSP3BuDZW0MtZ+U4vlUXPLumVEVq8IcEfxq6BhENt0p9/Z5ZcGQOBQ3fTxXYSbNnTMVwit07qgiAmCiLVlyIvZjVRZnEAHqMBwFr8L2V+QgIA/wSqUNNZcRDZ3OHhXaeRB/i6sJTyin0aQh7Ls3npQXf04jVRK2qT7R1fuJfWmhl/BzQ+cduLSgt4nGCB0Yhoo9DSwJCR4zJTIoxbVumf/blh2MdfErhPX+KIzENfZDb3N5hZzNxy5e/xNnLAQjFMTsxl5z0Xsjv/mEoF+Ko5pk+IjyWgE8PpHslgW1oewZeCmn5rLejmxGbr9PdM1PCZ1+SfJi0qUomAnyfXmWi7mVsWlLaPNm+4/UwSx/8Mk/i2b7mkH/xkNOEqCGNapS22dMrpjeMrxCMnR9KTkQi1sjWQDHhzpM3xIPsX7vYkR9iOF4boatPzF/POIN/1gJzHRteKSitb4yPd2fAN1jzJHfHVgfEDTxFLZMwbmknawXmat53LE+kZEI/y85ALuiL8E4Dl4Y8A5BNI7IAkgSi4NMnVc3TTMA=="
	if enc != want {
		t.Fatalf("encrypt mismatch:\n got %s\nwant %s", enc, want)
	}
	if sig := Signature("QDG6eK", "1700000000", "1234567890", enc); sig != "e71205edb9ace090ddd3ffa3707f163949e1c926" {
		t.Fatalf("signature = %s", sig)
	}
}

func TestExportVector(t *testing.T) {
	t.Parallel()
	v := vectors.LoadExport(t)
	key, err := DecodeKey(v.EncodingAESKey)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := base64.StdEncoding.DecodeString(v.CiphertextBase64)
	sum := md5.Sum(ct)
	if int64(len(ct)) != v.Size || hex.EncodeToString(sum[:]) != v.MD5 {
		t.Fatalf("size/md5 of vector ciphertext: %d %x", len(ct), sum)
	}
	got, err := Encrypt(key, []byte(v.Plaintext))
	if err != nil || !bytes.Equal(got, ct) {
		t.Fatalf("Encrypt mismatch: %v", err)
	}
	plain, err := Decrypt(key, ct)
	if err != nil || string(plain) != v.Plaintext {
		t.Fatalf("Decrypt = %q, %v", plain, err)
	}
	for _, r := range []io.Reader{bytes.NewReader(ct), iotest.OneByteReader(bytes.NewReader(ct)), iotest.HalfReader(bytes.NewReader(ct))} {
		dr, err := NewDecryptReader(r, key)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(dr)
		if err != nil || string(plain) != v.Plaintext {
			t.Fatalf("DecryptReader = %q, %v", plain, err)
		}
	}
}

func TestDecryptReaderRoundTrip(t *testing.T) {
	t.Parallel()
	key, _ := DecodeKey(NewKey())
	for _, n := range []int{0, 1, 15, 16, 31, 32, 33, 63, 64, 65, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 17} {
		plain := bytes.Repeat([]byte("abcdefghij"), n/10+1)[:n]
		ct, _ := Encrypt(key, plain)
		if len(ct)%BlockSize != 0 {
			t.Fatalf("n=%d: ciphertext %d not a multiple of 32", n, len(ct))
		}
		dr, _ := NewDecryptReader(iotest.HalfReader(bytes.NewReader(ct)), key)
		got, err := io.ReadAll(dr)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("n=%d: got %d bytes, %v", n, len(got), err)
		}
	}
}

func TestDecryptErrors(t *testing.T) {
	t.Parallel()
	key, _ := DecodeKey(NewKey())
	other, _ := DecodeKey(NewKey())
	ct, _ := Encrypt(key, []byte(`{"userlist":[]}`+strings.Repeat(" ", 100)))
	cases := []struct {
		name string
		ct   []byte
		key  []byte
		want error
	}{
		{"wrong key", ct, other, ErrBadPadding},
		{"truncated to non-multiple", ct[:len(ct)-3], key, ErrCiphertextLength},
		{"empty", nil, key, ErrCiphertextLength},
		{"short key", ct, key[:16], ErrInvalidKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Decrypt(c.key, c.ct); !errors.Is(err, c.want) {
				t.Fatalf("Decrypt err = %v, want %v", err, c.want)
			}
			dr, err := NewDecryptReader(bytes.NewReader(c.ct), c.key)
			if err == nil {
				_, err = io.ReadAll(dr)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("reader err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	for i := 0; i < 100; i++ {
		k := NewKey()
		if !ValidKey(k) {
			t.Fatalf("NewKey gave invalid %q", k)
		}
		if _, err := DecodeKey(k); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"", "short", strings.Repeat("a", 42), strings.Repeat("a", 44), strings.Repeat("a", 42) + "+", strings.Repeat("a", 42) + "="} {
		if _, err := DecodeKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("DecodeKey(%q) err = %v", bad, err)
		}
	}
}

func TestUnpadStrict(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{{}, {0}, {33}, append(bytes.Repeat([]byte{1}, 31), 3)} {
		if _, err := Unpad(b); !errors.Is(err, ErrBadPadding) {
			t.Errorf("Unpad(%v) err = %v", b, err)
		}
	}
	if got, err := Unpad(bytes.Repeat([]byte{32}, 32)); err != nil || len(got) != 0 {
		t.Errorf("full pad block: %v %v", got, err)
	}
}

func FuzzDecryptMessage(f *testing.F) {
	key, _ := DecodeKey("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")
	enc, _ := EncryptMessage(key, nil, []byte("<xml/>"), "corp")
	f.Add(enc)
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		DecryptMessage(key, s)
	})
}
