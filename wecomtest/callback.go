package wecomtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wecomkit/wecom/internal/wxcrypto"
)

// callbackTarget is where a batch_job_result event is POSTed.
type callbackTarget struct {
	URL, Token, EncodingAESKey string
	key                        []byte
}

func (c *callbackTarget) prepare() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("url must be an absolute http or https URL")
	}
	if c.Token == "" {
		return errors.New("token is empty")
	}
	key, err := wxcrypto.DecodeKey(c.EncodingAESKey)
	if err != nil {
		return errors.New("encodingaeskey must be 43 characters of [A-Za-z0-9]")
	}
	c.key = key
	return nil
}

// Delivery is one callback POST attempt.
type Delivery struct {
	URL     string
	JobID   string
	JobType string
	ErrCode int       // the event's BatchJob.ErrCode
	Attempt int       // 1 for the first try
	Status  int       // HTTP status received, 0 on a transport error
	Err     string    // transport error, if any
	Time    time.Time // on the server clock
}

// CallbackDeliveries returns every callback POST attempt so far, in order.
func (s *Server) CallbackDeliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// BatchJobResultXML renders the decrypted batch_job_result event of §8.5
// (https://developer.work.weixin.qq.com/document/path/90973): ToUserName the
// corp id, FromUserName "sys" (the export pages' value; the import page's
// example is a placeholder), MsgType event, Event batch_job_result.
func BatchJobResultXML(corpID string, createTime int64, jobID, jobType string, errCode int, errMsg string) []byte {
	var b bytes.Buffer
	b.WriteString("<xml><ToUserName><![CDATA[")
	b.WriteString(cdata(corpID))
	b.WriteString("]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>")
	b.WriteString(strconv.FormatInt(createTime, 10))
	b.WriteString("</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[batch_job_result]]></Event><BatchJob><JobId><![CDATA[")
	b.WriteString(cdata(jobID))
	b.WriteString("]]></JobId><JobType><![CDATA[")
	b.WriteString(cdata(jobType))
	b.WriteString("]]></JobType><ErrCode>")
	b.WriteString(strconv.Itoa(errCode))
	b.WriteString("</ErrCode><ErrMsg><![CDATA[")
	b.WriteString(cdata(errMsg))
	b.WriteString("]]></ErrMsg></BatchJob></xml>")
	return b.Bytes()
}

// cdata keeps "]]>" out of a CDATA section.
func cdata(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("]]>"), []byte("]]]]><![CDATA[>")))
}

// deliverEvent POSTs an encrypted, signed batch_job_result event to cb, in
// the background: query msg_signature, timestamp, nonce; body
// <xml><ToUserName/><AgentID/><Encrypt/></xml>; receiveid = corp id. Any
// status other than 200, or a transport error, is retried per
// WithCallbackRetries; each attempt times out per WithCallbackTimeout
// (5 s). Close stops deliveries.
func (s *Server) deliverEvent(cb *callbackTarget, jobID, jobType string, errCode int, errMsg string) {
	s.goTracked(func() {
		client := &http.Client{
			Timeout:   s.cfg.cbTimeout,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		}
		for attempt := 1; attempt <= 1+s.cfg.cbRetries; attempt++ {
			if attempt > 1 && !s.sleep(s.cfg.cbRetryDelay) {
				return
			}
			status, err := s.postEvent(client, cb, jobID, jobType, errCode, errMsg)
			d := Delivery{URL: cb.URL, JobID: jobID, JobType: jobType, ErrCode: errCode, Attempt: attempt, Status: status, Time: s.now()}
			if err != nil {
				d.Err = err.Error()
			}
			s.mu.Lock()
			s.deliveries = append(s.deliveries, d)
			s.mu.Unlock()
			s.log.Info("wecomtest: callback attempt", "jobid", jobID, "attempt", attempt, "status", status)
			if status == http.StatusOK || s.ctx.Err() != nil {
				return
			}
		}
	})
}

func (s *Server) postEvent(client *http.Client, cb *callbackTarget, jobID, jobType string, errCode int, errMsg string) (int, error) {
	now := s.now().Unix()
	msg := BatchJobResultXML(s.CorpID, now, jobID, jobType, errCode, errMsg)
	enc, err := wxcrypto.EncryptMessage(cb.key, nil, msg, s.CorpID)
	if err != nil {
		return 0, err
	}
	ts := strconv.FormatInt(now, 10)
	nonce := fmt.Sprintf("%010d", s.randUint()%10000000000)
	sig := wxcrypto.Signature(cb.Token, ts, nonce, enc)
	body := "<xml><ToUserName><![CDATA[" + cdata(s.CorpID) + "]]></ToUserName><AgentID><![CDATA[]]></AgentID><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"
	u, err := url.Parse(cb.URL)
	if err != nil {
		return 0, err
	}
	q := u.Query()
	q.Set("msg_signature", sig)
	q.Set("timestamp", ts)
	q.Set("nonce", nonce)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.cbTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func (s *Server) randUint() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Uint64()
}
