package wecom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// Upload limits of media/upload for type=file
// (https://developer.work.weixin.qq.com/document/path/90253).
const (
	MaxUploadSize = 20 << 20 // 20 MB
	MinUploadSize = 6        // files must be larger than 5 bytes
)

// Media is an uploaded temporary media file. Its MediaID is valid for 3
// days.
type Media struct {
	Type      string
	MediaID   string
	CreatedAt time.Time
}

type mediaResponse struct {
	Type      string   `json:"type"`
	MediaID   string   `json:"media_id"`
	CreatedAt *flexInt `json:"created_at"` // a decimal string in WeCom's answer
}

// UploadFile uploads r as a temporary file (media/upload?type=file) and
// returns its media_id, the input of the batch import APIs.
// See https://developer.work.weixin.qq.com/document/path/90253.
//
// Files of 5 bytes or fewer (ErrFileTooSmall) or over 20 MB
// (ErrFileTooLarge) are refused before any network call. When r is an
// *os.File or another io.ReaderAt with a known size (*bytes.Reader,
// *strings.Reader, *io.SectionReader) it is read in place on every attempt;
// any other reader is buffered once, in chunks, so that a retry (after a
// token refresh, say) resends the same bytes.
func (c *Client) UploadFile(ctx context.Context, filename string, r io.Reader) (*Media, error) {
	if err := validFilename(filename); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("wecom: UploadFile: nil reader")
	}
	content, err := replayable(r)
	if err != nil {
		return nil, err
	}
	body, err := newUploadBody(filename, content)
	if err != nil {
		return nil, err
	}
	var mr mediaResponse
	q := url.Values{"type": {"file"}}
	if err := c.call(ctx, apiCall{method: http.MethodPost, path: "/cgi-bin/media/upload", query: q, upload: body, kind: callRead}, &mr); err != nil {
		return nil, err
	}
	if mr.MediaID == "" {
		return nil, &ResponseError{Path: "/cgi-bin/media/upload", StatusCode: http.StatusOK, Reason: "no media_id in the response"}
	}
	m := &Media{Type: mr.Type, MediaID: mr.MediaID}
	if mr.CreatedAt != nil {
		m.CreatedAt = time.Unix(int64(*mr.CreatedAt), 0)
	}
	return m, nil
}

func validFilename(name string) error {
	switch {
	case name == "":
		return errors.New("wecom: UploadFile: filename is empty")
	case len(name) > 255:
		return errors.New("wecom: UploadFile: filename longer than 255 bytes")
	case !utf8.ValidString(name):
		return errors.New("wecom: UploadFile: filename is not valid UTF-8")
	case strings.ContainsAny(name, "\"\r\n\x00/\\"):
		return fmt.Errorf("wecom: UploadFile: filename %.40q contains a quote, slash or control character", name)
	}
	return nil
}

// sizedReaderAt is content that can be read again from the start.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// chunks is content buffered from a one-shot reader.
type chunks struct {
	parts [][]byte
	size  int64
}

func (c *chunks) Size() int64 { return c.size }

func (c *chunks) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for _, part := range c.parts {
		if off >= int64(len(part)) {
			off -= int64(len(part))
			continue
		}
		k := copy(p[n:], part[off:])
		n += k
		off = 0
		if n == len(p) {
			return n, nil
		}
	}
	return n, io.EOF
}

const chunkLen = 1 << 20

// replayable returns content that can be read from the start on every
// attempt, checking the size limits without reading more than 20 MB + 1.
func replayable(r io.Reader) (sizedReaderAt, error) {
	var ra sizedReaderAt
	switch v := r.(type) {
	case *os.File:
		st, err := v.Stat()
		if err != nil {
			return nil, fmt.Errorf("wecom: UploadFile: %w", err)
		}
		if st.Mode().IsRegular() {
			pos, err := v.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, fmt.Errorf("wecom: UploadFile: %w", err)
			}
			ra = io.NewSectionReader(v, pos, st.Size()-pos)
		}
	case *bytes.Reader:
		ra = io.NewSectionReader(v, v.Size()-int64(v.Len()), int64(v.Len()))
	case *strings.Reader:
		ra = io.NewSectionReader(v, v.Size()-int64(v.Len()), int64(v.Len()))
	case *io.SectionReader:
		pos, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, fmt.Errorf("wecom: UploadFile: %w", err)
		}
		ra = io.NewSectionReader(v, pos, v.Size()-pos)
	}
	if ra == nil {
		c := &chunks{}
		lr := io.LimitReader(r, MaxUploadSize+1)
		for {
			buf := make([]byte, chunkLen)
			n, err := io.ReadFull(lr, buf)
			if n > 0 {
				c.parts = append(c.parts, buf[:n:n])
				c.size += int64(n)
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("wecom: UploadFile: reading the file: %w", err)
			}
		}
		ra = c
	}
	switch size := ra.Size(); {
	case size > MaxUploadSize:
		return nil, fmt.Errorf("wecom: UploadFile: %w (media/upload type=file allows 20 MB)", ErrFileTooLarge)
	case size < MinUploadSize:
		return nil, fmt.Errorf("wecom: UploadFile: %w (got %d bytes)", ErrFileTooSmall, size)
	}
	return ra, nil
}

// uploadBody is a multipart/form-data body with one part "media", built so
// that every attempt streams the same bytes.
type uploadBody struct {
	contentType string
	head, tail  []byte
	content     sizedReaderAt
}

func newUploadBody(filename string, content sizedReaderAt) (*uploadBody, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="media"; filename="%s"`, filename))
	h.Set("Content-Type", "application/octet-stream")
	if _, err := mw.CreatePart(h); err != nil {
		return nil, fmt.Errorf("wecom: UploadFile: %w", err)
	}
	head := bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("wecom: UploadFile: %w", err)
	}
	return &uploadBody{contentType: mw.FormDataContentType(), head: head, tail: bytes.Clone(buf.Bytes()), content: content}, nil
}

// reader returns a fresh reader over the whole body.
func (u *uploadBody) reader() io.Reader {
	return io.MultiReader(bytes.NewReader(u.head), io.NewSectionReader(u.content, 0, u.content.Size()), bytes.NewReader(u.tail))
}

// size is the length of the whole body.
func (u *uploadBody) size() int64 {
	return int64(len(u.head)) + u.content.Size() + int64(len(u.tail))
}
