package wecomtest

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// MediaTTL is how long an uploaded media_id stays valid (on the server clock).
const MediaTTL = 3 * 24 * time.Hour

type mediaFile struct {
	typ      string
	filename string
	data     []byte
	created  time.Time
}

// mediaLimits is the size limit per media type (bytes).
var mediaLimits = map[string]int{
	"image": 10 << 20,
	"voice": 2 << 20,
	"video": 10 << 20,
	"file":  maxMediaSize,
}

// mediaExts lists the file name extensions accepted per type (40004
// otherwise); "file" accepts anything.
var mediaExts = map[string][]string{
	"image": {".jpg", ".jpeg", ".png"},
	"voice": {".amr"},
	"video": {".mp4"},
}

// handleMediaUpload mirrors POST /cgi-bin/media/upload?access_token=&type=
// (https://developer.work.weixin.qq.com/document/path/90389, 上传临时素材).
//
// The body is multipart/form-data with the file in the part named "media"
// (filename= is used as the display name; filelength= is not required).
// Errors, in the order they are checked: 40005 type missing or not one of
// image|voice|video|file; 44001 body not multipart, no part named "media"
// (a [U] choice: there is no dedicated code) or an empty file; 40006 a file
// of 1..5 bytes; 45001 over the type's limit (file: 20 MiB); 40004 an
// image/voice/video whose filename extension is not jpg/png, amr, mp4.
// Success: {"errcode":0,"errmsg":"","type":"file","media_id":"...",
// "created_at":"<unix seconds as a string>"}; the media_id is valid for
// MediaTTL on the server clock.
func (s *Server) handleMediaUpload(w http.ResponseWriter, r *http.Request, body []byte) {
	if !s.checkToken(w, r) {
		return
	}
	typ := r.URL.Query().Get("type")
	limit, ok := mediaLimits[typ]
	if !ok {
		s.writeErr(w, r, 40005, "")
		return
	}
	filename, data, code := parseMediaPart(r.Header.Get("Content-Type"), body)
	switch {
	case code != 0:
		s.writeErr(w, r, code, "")
		return
	case len(data) == 0:
		s.writeErr(w, r, 44001, "")
		return
	case len(data) <= 5:
		s.writeErr(w, r, 40006, "file must be larger than 5 bytes")
		return
	case len(data) > limit:
		s.writeErr(w, r, 45001, "")
		return
	}
	if exts, ok := mediaExts[typ]; ok {
		ext := strings.ToLower(path.Ext(filename))
		good := false
		for _, e := range exts {
			good = good || e == ext
		}
		if !good {
			s.writeErr(w, r, 40004, "")
			return
		}
	}
	now := s.now()
	id := "3" + randomToken(45)
	s.mu.Lock()
	for k, m := range s.media { // purge expired media
		if now.Sub(m.created) >= MediaTTL {
			delete(s.media, k)
		}
	}
	s.media[id] = &mediaFile{typ: typ, filename: filename, data: data, created: now}
	s.mu.Unlock()
	s.writeJSON(w, http.StatusOK, struct {
		envelope
		Type      string `json:"type"`
		MediaID   string `json:"media_id"`
		CreatedAt string `json:"created_at"`
	}{envelope{0, ""}, typ, id, strconv.FormatInt(now.Unix(), 10)})
}

// parseMediaPart returns the filename and bytes of the "media" part.
func parseMediaPart(contentType string, body []byte) (string, []byte, int) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return "", nil, 44001
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", nil, 44001
			}
			return "", nil, 44001
		}
		if p.FormName() != "media" {
			_ = p.Close()
			continue
		}
		data, err := io.ReadAll(io.LimitReader(p, maxMediaSize+1))
		if err != nil {
			return "", nil, 44001
		}
		return p.FileName(), data, 0
	}
}

// mediaForImport looks up a media_id for a batch import: unknown, expired or
// not of type "file" gives 40007.
func (s *Server) mediaForImport(id string) ([]byte, int) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.media[id]
	if m == nil || m.typ != "file" || now.Sub(m.created) >= MediaTTL {
		return nil, 40007
	}
	return m.data, 0
}

// MediaCount reports how many media files are stored (expired ones are
// purged lazily on upload).
func (s *Server) MediaCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.media)
}
