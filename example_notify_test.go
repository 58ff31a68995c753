package wecom_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"time"

	"github.com/wecomkit/wecom"
)

func ExampleNewCallbackHandler() {
	// The Token and EncodingAESKey given as callback.token and
	// callback.encodingaeskey of the import, and your corpid.
	cc, err := wecom.NewCallbackCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
	if err != nil {
		log.Fatal(err)
	}
	notifier := wecom.NewJobNotifier() // pass to WaitBatchResult with wecom.WithNotifier(notifier)
	h := wecom.NewCallbackHandler(cc, func(ctx context.Context, ev *wecom.BatchJobEvent) error {
		fmt.Println("job", ev.JobID, ev.JobType, "finished, err:", ev.Err())
		return nil // an error here answers 500, and WeCom sends the event again
	}, wecom.WithJobNotifier(notifier))
	// In a server: http.Handle("/wecom/callback", h)

	// Here, play WeCom: encrypt and sign an event, and POST it to h.
	event := `<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>` +
		`<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[batch_job_result]]></Event>` +
		`<BatchJob><JobId><![CDATA[S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4]]></JobId><JobType><![CDATA[replace_user]]></JobType>` +
		`<ErrCode>0</ErrCode><ErrMsg><![CDATA[ok]]></ErrMsg></BatchJob></xml>`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body, err := cc.EncryptMessage([]byte(event), ts, "1372623149")
	if err != nil {
		log.Fatal(err)
	}
	var signed struct{ MsgSignature string }
	if err := xml.Unmarshal(body, &signed); err != nil {
		log.Fatal(err)
	}
	q := url.Values{"msg_signature": {signed.MsgSignature}, "timestamp": {ts}, "nonce": {"1372623149"}}
	events, cancel := notifier.Subscribe("S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4")
	defer cancel()

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/wecom/callback?"+q.Encode(), bytes.NewReader(body)))
	fmt.Println("status", w.Code)
	fmt.Println("waiter woken for", (<-events).JobType)
	// Output:
	// job S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4 replace_user finished, err: <nil>
	// status 200
	// waiter woken for replace_user
}
