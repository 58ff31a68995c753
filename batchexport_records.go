package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
)

// ExportedUser is one member of an export/user or export/simple_user data
// file: the fields of user/list, as listed in
// https://developer.work.weixin.qq.com/document/path/94954 (simple_user
// files fill only UserID, Name, Department and OpenUserID). Fields WeCom
// masks for the app are empty.
type ExportedUser struct {
	UserID           string           `json:"userid"`
	Name             string           `json:"name"`
	Department       []int            `json:"department"`
	Order            []int            `json:"order"`
	Position         string           `json:"position"`
	Mobile           string           `json:"mobile"`
	Gender           Gender           `json:"gender"` // a string ("0", "1", "2") in the file
	Email            string           `json:"email"`
	BizMail          string           `json:"biz_mail"`
	IsLeaderInDept   []int            `json:"is_leader_in_dept"` // 1 = leader, per Department
	DirectLeader     []string         `json:"direct_leader"`
	Avatar           string           `json:"avatar"`
	ThumbAvatar      string           `json:"thumb_avatar"`
	Telephone        string           `json:"telephone"`
	Alias            string           `json:"alias"`
	Address          string           `json:"address"`
	OpenUserID       string           `json:"open_userid"`
	MainDepartment   int              `json:"main_department"`
	ExtAttr          ExtAttr          `json:"extattr"`
	Status           int              `json:"status"` // 1 active, 2 disabled, 4 not activated, 5 left
	QRCode           string           `json:"qr_code"`
	ExternalPosition string           `json:"external_position"`
	ExternalProfile  *ExternalProfile `json:"external_profile,omitempty"`
	EnglishName      string           `json:"english_name"` // deprecated by WeCom
	Enable           int              `json:"enable"`       // deprecated by WeCom: 1 enabled
	HideMobile       int              `json:"hide_mobile"`  // deprecated by WeCom
	IsLeader         int              `json:"is_leader"`    // deprecated by WeCom
}

// ExtAttr holds a member's custom attributes ("extattr").
type ExtAttr struct {
	Attrs []ExtAttrItem `json:"attrs"`
}

// Types of ExtAttrItem.
const (
	ExtAttrTypeText        = 0
	ExtAttrTypeWeb         = 1
	ExtAttrTypeMiniprogram = 2
)

// ExtAttrItem is one custom attribute: Type says which of Text, Web and
// Miniprogram is set.
type ExtAttrItem struct {
	Type        int                 `json:"type"`
	Name        string              `json:"name"`
	Text        *ExtAttrText        `json:"text,omitempty"`
	Web         *ExtAttrWeb         `json:"web,omitempty"`
	Miniprogram *ExtAttrMiniprogram `json:"miniprogram,omitempty"`
}

// ExtAttrText is a text attribute.
type ExtAttrText struct {
	Value string `json:"value"`
}

// ExtAttrWeb is a web page attribute.
type ExtAttrWeb struct {
	URL   string `json:"url"`
	Title string `json:"title"`
}

// ExtAttrMiniprogram is a mini program attribute.
type ExtAttrMiniprogram struct {
	AppID    string `json:"appid"`
	PagePath string `json:"pagepath"`
	Title    string `json:"title"`
}

// ExternalProfile is a member's profile as shown to external contacts
// ("external_profile").
type ExternalProfile struct {
	ExternalCorpName string          `json:"external_corp_name"`
	WechatChannels   *WechatChannels `json:"wechat_channels,omitempty"`
	ExternalAttr     []ExtAttrItem   `json:"external_attr"`
}

// WechatChannels is the WeChat Channels account of an external profile.
type WechatChannels struct {
	Nickname string `json:"nickname"`
	Status   int    `json:"status"`
}

// ExportedDepartment is one department of an export/department data file
// (https://developer.work.weixin.qq.com/document/path/94954).
type ExportedDepartment struct {
	ID               int      `json:"id"`
	Name             string   `json:"name"`
	NameEn           string   `json:"name_en"`
	ParentID         int      `json:"parentid"`
	Order            int      `json:"order"`
	DepartmentLeader []string `json:"department_leader"`
}

// ExportedTagMember is one entry of an export/taguser data file
// (https://developer.work.weixin.qq.com/document/path/94953): a file
// {"tagname":…, "userlist":[{"userid","name"}…], "partylist":[id…]} gives
// one record per member, with UserID and Name set, and one per department,
// with PartyID set (and UserID empty). TagName is the file's "tagname",
// which WeCom writes before the lists; a record read before it (if a file
// ever put it after them) has an empty TagName.
type ExportedTagMember struct {
	TagName string
	UserID  string
	Name    string
	PartyID int
}

// IsDepartment reports whether m is a department of the tag rather than a
// member.
func (m ExportedTagMember) IsDepartment() bool { return m.UserID == "" && m.PartyID != 0 }

// ExportDecodeError is a data file whose decrypted content is not the JSON
// an export file holds. File is the index in ExportResult.DataList; Offset
// is where in its plaintext the bad value starts.
type ExportDecodeError struct {
	File   int
	Offset int64
	Err    error
}

// Error names the data file, the offset and the cause.
func (e *ExportDecodeError) Error() string {
	return fmt.Sprintf("wecom: export data file %d: invalid JSON near byte %d: %v", e.File, e.Offset, e.Err)
}

// Unwrap returns the decoding error.
func (e *ExportDecodeError) Unwrap() error { return e.Err }

// ExportedUsers returns the members of every data file of an export/user or
// export/simple_user result, in order. Each file is downloaded and verified
// by OpenExportFile before any of its records is yielded; records are then
// decrypted and decoded one at a time, so memory does not grow with their
// number. On the first error the sequence yields (zero, err) and stops:
// download and verification errors as OpenExportFile returns them (wrapped
// with the file index), bad JSON as an *ExportDecodeError. Stopping the
// loop early closes and removes everything. ctx is checked between records.
// See https://developer.work.weixin.qq.com/document/path/94954.
func (c *Client) ExportedUsers(ctx context.Context, res *ExportResult, key string) iter.Seq2[ExportedUser, error] {
	return exportRecords(c, ctx, res, key, []string{"userlist"}, nil, func(d *exportDecoder, field string, raw []byte, yield func(ExportedUser, error) bool) bool {
		var u ExportedUser
		if err := decodeUser(raw, &u); err != nil {
			return yield(ExportedUser{}, d.fail(err))
		}
		return yield(u, nil)
	})
}

// ExportedDepartments returns the departments of every data file of an
// export/department result, in order, like ExportedUsers.
// See https://developer.work.weixin.qq.com/document/path/94954.
func (c *Client) ExportedDepartments(ctx context.Context, res *ExportResult, key string) iter.Seq2[ExportedDepartment, error] {
	return exportRecords(c, ctx, res, key, []string{"department"}, nil, func(d *exportDecoder, field string, raw []byte, yield func(ExportedDepartment, error) bool) bool {
		var dep ExportedDepartment
		if err := unmarshalObject(raw, &dep); err != nil {
			return yield(ExportedDepartment{}, d.fail(err))
		}
		return yield(dep, nil)
	})
}

// ExportedTagUsers returns the members and departments of every data file
// of an export/taguser result, in order, like ExportedUsers; see
// ExportedTagMember for how a record tells which it is.
// See https://developer.work.weixin.qq.com/document/path/94953.
func (c *Client) ExportedTagUsers(ctx context.Context, res *ExportResult, key string) iter.Seq2[ExportedTagMember, error] {
	return func(yield func(ExportedTagMember, error) bool) {
		var tagName string // per iteration: the "tagname" of the file being read
		exportRecords(c, ctx, res, key, []string{"userlist", "partylist"}, []string{"tagname"}, func(d *exportDecoder, field string, raw []byte, yield func(ExportedTagMember, error) bool) bool {
			switch field {
			case "tagname":
				if err := json.Unmarshal(raw, &tagName); err != nil {
					return yield(ExportedTagMember{}, d.fail(err))
				}
				return true
			case "userlist":
				var u struct {
					UserID string `json:"userid"`
					Name   string `json:"name"`
				}
				if err := unmarshalObject(raw, &u); err != nil {
					return yield(ExportedTagMember{}, d.fail(err))
				}
				return yield(ExportedTagMember{TagName: tagName, UserID: u.UserID, Name: u.Name}, nil)
			default: // partylist
				var id int
				err := json.Unmarshal(raw, &id)
				if err == nil && id <= 0 {
					err = fmt.Errorf("department id %d in partylist is not positive", id)
				}
				if err != nil {
					return yield(ExportedTagMember{}, d.fail(err))
				}
				return yield(ExportedTagMember{TagName: tagName, PartyID: id}, nil)
			}
		})(yield)
	}
}

// exportRecords runs fn over the wanted values of every data file of res.
// arrays lists the top-level keys whose array elements are passed one by
// one, values the keys whose values are passed whole. fn returns false to
// stop.
func exportRecords[T any](c *Client, ctx context.Context, res *ExportResult, key string, arrays, values []string,
	fn func(d *exportDecoder, field string, raw []byte, yield func(T, error) bool) bool) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if ctx == nil {
			yield(zero, errors.New("wecom: nil context"))
			return
		}
		if res == nil || res.Status != ExportDone {
			yield(zero, errExportResultNotDone(res))
			return
		}
		for i, f := range res.DataList {
			rc, err := c.OpenExportFile(ctx, f, key)
			if err != nil {
				yield(zero, fmt.Errorf("wecom: export data file %d of %d: %w", i, len(res.DataList), err))
				return
			}
			more := func() bool {
				// Deferred: a panic in the consumer's loop body unwinds
				// through yield, and the staged file must still go.
				defer rc.Close()
				return decodeExportStream(ctx, rc, i, arrays, values, func(d *exportDecoder, field string, raw []byte) bool {
					return fn(d, field, raw, yield)
				}, func(err error) { yield(zero, err) })
			}()
			if !more {
				return
			}
		}
	}
}

// decodeExportStream decodes one plaintext stream. It returns false when
// it stopped early (fn returned false, fn reported an error with d.fail, or
// an error was reported to fail).
func decodeExportStream(ctx context.Context, r io.Reader, file int, arrays, values []string,
	fn func(d *exportDecoder, field string, raw []byte) bool, fail func(error)) bool {
	d := newExportDecoder(r, file, arrays, values)
	for n := 0; ; n++ {
		if n&255 == 0 && ctx != nil {
			if err := ctx.Err(); err != nil {
				fail(fmt.Errorf("wecom: export data file %d: %w", file, err))
				return false
			}
		}
		field, raw, err := d.next()
		if err == io.EOF {
			return true
		}
		if err != nil {
			fail(err)
			return false
		}
		if !fn(d, field, raw) {
			return false
		}
		if d.err != nil {
			// fn has already yielded this error: stop, even if the
			// consumer asked for more, instead of yielding it again.
			return false
		}
	}
}

// errNotObject is a record that is not a JSON object.
var errNotObject = errors.New("record is not a JSON object")

// unmarshalObject decodes a record that must be a JSON object (so that a
// null element is not taken for an empty record).
func unmarshalObject(raw []byte, v any) error {
	if len(raw) == 0 || raw[0] != '{' {
		return errNotObject
	}
	return json.Unmarshal(raw, v)
}
