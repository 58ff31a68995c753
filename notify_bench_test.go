package wecom

import "testing"

// BenchmarkCallbackVerifyDecryptParse is the work the handler does for one
// batch_job_result POST, without HTTP: envelope XML, signature check,
// AES-256-CBC decryption, framing and receiver check, event XML.
func BenchmarkCallbackVerifyDecryptParse(b *testing.B) {
	cc := newTestCrypto(b)
	body := readFixture(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		plain, err := cc.DecryptMessage(fixtureSignature, fixtureTimestamp, fixtureNonce, body)
		if err != nil {
			b.Fatal(err)
		}
		ev, err := ParseBatchJobEvent(plain)
		if err != nil || ev.JobID != fixtureJobID {
			b.Fatal(ev, err)
		}
	}
}
