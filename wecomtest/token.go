package wecomtest

import (
	"encoding/base64"
	"net/http"
	"time"
)

// tokenState is one issued access token.
type tokenState struct {
	expiresAt   time.Time
	expired     bool // forced by ExpireTokens: answers 42001
	invalidated bool // forced by InvalidateTokens: answers 40014
}

// randomToken returns an opaque URL-safe string of 4n/3 characters.
func randomToken(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }

// handleGetToken mirrors GET /cgi-bin/gettoken?corpid=ID&corpsecret=SECRET
// (https://developer.work.weixin.qq.com/document/path/91039).
//
// Errors: 41002 corpid missing, 41004 corpsecret missing, 40013 wrong corpid,
// 40001 wrong corpsecret. Choice ([U] in the spec): while the current token
// is valid, gettoken returns that same token with expires_in = its remaining
// lifetime in whole seconds (as the 2020 revision of the page says); a new
// token is issued once it expired on the clock or was forced out by
// ExpireTokens / InvalidateTokens. Tokens are 128-character opaque strings.
func (s *Server) handleGetToken(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	corpID, secret := q.Get("corpid"), q.Get("corpsecret")
	switch {
	case corpID == "":
		s.writeErr(w, r, 41002, "")
		return
	case secret == "":
		s.writeErr(w, r, 41004, "")
		return
	case corpID != s.CorpID:
		s.writeErr(w, r, 40013, "")
		return
	case secret != s.CorpSecret:
		s.writeErr(w, r, 40001, "")
		return
	}
	now := s.now()
	s.mu.Lock()
	tok := s.curToken
	st := s.tokens[tok]
	if st == nil || st.expired || st.invalidated || !now.Before(st.expiresAt) {
		tok = randomToken(96)
		st = &tokenState{expiresAt: now.Add(s.cfg.tokenTTL)}
		s.tokens[tok] = st
		s.curToken = tok
	}
	left := int(st.expiresAt.Sub(now) / time.Second)
	s.mu.Unlock()
	s.writeJSON(w, http.StatusOK, struct {
		envelope
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}{okEnvelope, tok, max(left, 1)})
}

// checkToken validates the access_token query parameter of an API call and
// answers the error itself when it is bad: 41001 missing (a token in the
// body does not count), 40014 unknown or invalidated, 42001 expired.
func (s *Server) checkToken(w http.ResponseWriter, r *http.Request) bool {
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		s.writeErr(w, r, 41001, "")
		return false
	}
	now := s.now()
	s.mu.Lock()
	st := s.tokens[tok]
	code := 0
	switch {
	case st == nil || st.invalidated:
		code = 40014
	case st.expired || !now.Before(st.expiresAt):
		code = 42001
	}
	s.mu.Unlock()
	if code != 0 {
		s.writeErr(w, r, code, "")
		return false
	}
	return true
}

// ExpireTokens makes every token issued so far answer 42001 (access_token
// expired); the next gettoken issues a new one.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	for _, st := range s.tokens {
		st.expired = true
	}
	s.mu.Unlock()
}

// InvalidateTokens makes every token issued so far answer 40014 (invalid
// access_token); the next gettoken issues a new one.
func (s *Server) InvalidateTokens() {
	s.mu.Lock()
	for _, st := range s.tokens {
		st.invalidated = true
	}
	s.mu.Unlock()
}

// TokenCount reports how many distinct tokens gettoken has issued.
func (s *Server) TokenCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}
