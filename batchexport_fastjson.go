package wecom

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// decodeUser decodes one export member record. Members are the bulk of an
// export (up to 10^6 per file) and encoding/json decodes them at about
// 100 MB/s, most of the CPU of the whole export pipeline; fastDecodeUser
// is a decoder specialised for ExportedUser that handles the common shape
// several times faster. Whenever it meets anything it is not certain to
// decode exactly as encoding/json would (an escape it does not handle, a
// null, a duplicate or case-folded key, a number that is not a plain
// integer, invalid JSON …), it gives up and the record is decoded again by
// encoding/json, which is therefore the reference for both results and
// errors. FuzzFastDecodeUser checks that the two agree.
func decodeUser(raw []byte, u *ExportedUser) error {
	if len(raw) == 0 || raw[0] != '{' {
		return errNotObject
	}
	if fastDecodeUser(raw, u) {
		return nil
	}
	*u = ExportedUser{}
	return json.Unmarshal(raw, u)
}

// userKeys are the JSON keys of ExportedUser, for the case-folding check.
var userKeys = []string{"userid", "name", "department", "order", "position", "mobile", "gender",
	"email", "biz_mail", "is_leader_in_dept", "direct_leader", "avatar", "thumb_avatar", "telephone",
	"alias", "address", "open_userid", "main_department", "extattr", "status", "qr_code",
	"external_position", "external_profile", "english_name", "enable", "hide_mobile", "is_leader"}

func foldsToUserKey(k []byte) bool {
	for _, uk := range userKeys {
		if strings.EqualFold(string(k), uk) {
			return true
		}
	}
	return false
}

// fastParser reads JSON from b at i. Every method returns false when it
// is not sure, never an error: the caller falls back to encoding/json.
type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) consume(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// special marks the bytes a string scan must stop at.
var special = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	for c := 0x80; c < 0x100; c++ {
		t[c] = true
	}
	return t
}()

// member reads the start of an object member, `"key":`, with the white
// space around it, and returns the key.
func (p *fastParser) member() ([]byte, bool) {
	p.ws()
	k, ok := p.key()
	if !ok {
		return nil, false
	}
	p.ws()
	if !p.consume(':') {
		return nil, false
	}
	p.ws()
	return k, true
}

// key reads an object key made only of printable ASCII without escapes.
func (p *fastParser) key() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			k := p.b[start:p.i]
			p.i++
			return k, true
		}
		if special[c] {
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// str reads a JSON string.
func (p *fastParser) str() (string, bool) {
	if !p.consume('"') {
		return "", false
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		if !special[c] {
			p.i++
			continue
		}
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return p.slowStr(start - 1)
			}
			return string(s), true
		case c == '\\':
			return p.slowStr(start - 1)
		case c < 0x20:
			return "", false
		default:
			ascii = false
			p.i++
		}
	}
	return "", false
}

// slowStr decodes the string starting at b[q] (its opening quote) with
// encoding/json: escapes and invalid UTF-8.
func (p *fastParser) slowStr(q int) (string, bool) {
	i := q + 1
	for i < len(p.b) {
		switch c := p.b[i]; {
		case c == '\\':
			i += 2
			continue
		case c == '"':
			var s string
			if json.Unmarshal(p.b[q:i+1], &s) != nil {
				return "", false
			}
			p.i = i + 1
			return s, true
		}
		i++
	}
	return "", false
}

// int reads an integer that fits an int; 18 digits at most.
func (p *fastParser) int() (int, bool) {
	neg := p.consume('-')
	start := p.i
	n := 0
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 18 || (digits > 1 && p.b[start] == '0') {
		return 0, false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

func (p *fastParser) ints() ([]int, bool) { return fastArray(p, p.int) }

func (p *fastParser) strs() ([]string, bool) { return fastArray(p, p.str) }

// fastArray parses a JSON array whose elements elem parses. An empty array
// is a non-nil empty slice, as encoding/json gives.
func fastArray[T any](p *fastParser, elem func() (T, bool)) ([]T, bool) {
	if !p.consume('[') {
		return nil, false
	}
	p.ws()
	out := []T{}
	if p.consume(']') {
		return out, true
	}
	for {
		p.ws()
		v, ok := elem()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		p.ws()
		if p.consume(',') {
			continue
		}
		return out, p.consume(']')
	}
}

// gender reads "0", "1", "2", "" or 0, 1, 2.
func (p *fastParser) gender() (Gender, bool) {
	b := p.b[p.i:]
	switch {
	case len(b) >= 3 && b[0] == '"' && b[2] == '"' && '0' <= b[1] && b[1] <= '2':
		p.i += 3
		return Gender(b[1] - '0'), true
	case len(b) >= 2 && b[0] == '"' && b[1] == '"':
		p.i += 2
		return GenderUnset, true
	case len(b) >= 1 && '0' <= b[0] && b[0] <= '2':
		p.i++
		if p.i < len(p.b) {
			switch c := p.b[p.i]; {
			case '0' <= c && c <= '9', c == '.', c == 'e', c == 'E':
				return 0, false
			}
		}
		return Gender(b[0] - '0'), true
	}
	return 0, false
}

// raw returns the next value, checked by json.Valid.
func (p *fastParser) raw() ([]byte, bool) {
	var s valueScan
	n, done, err := s.step(p.b[p.i:])
	if err != nil || !done || !json.Valid(p.b[p.i:p.i+n]) {
		return nil, false
	}
	v := p.b[p.i : p.i+n]
	p.i += n
	return v, true
}

// nested decodes the next value (an object) into v with encoding/json.
func (p *fastParser) nested(v any) bool {
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return false
	}
	r, ok := p.raw()
	return ok && json.Unmarshal(r, v) == nil
}

// fastDecodeUser decodes b, one member record, into the zero *u. It
// returns false when encoding/json must decide; *u is then garbage.
func fastDecodeUser(b []byte, u *ExportedUser) bool {
	p := fastParser{b: b}
	if !p.consume('{') {
		return false
	}
	p.ws()
	if p.consume('}') {
		p.ws()
		return p.i == len(p.b)
	}
	var seen uint32
	for {
		k, ok := p.member()
		if !ok {
			return false
		}
		var bit uint32
		switch string(k) {
		case "userid":
			bit = 1 << 0
			u.UserID, ok = p.str()
		case "name":
			bit = 1 << 1
			u.Name, ok = p.str()
		case "department":
			bit = 1 << 2
			u.Department, ok = p.ints()
		case "order":
			bit = 1 << 3
			u.Order, ok = p.ints()
		case "position":
			bit = 1 << 4
			u.Position, ok = p.str()
		case "mobile":
			bit = 1 << 5
			u.Mobile, ok = p.str()
		case "gender":
			bit = 1 << 6
			u.Gender, ok = p.gender()
		case "email":
			bit = 1 << 7
			u.Email, ok = p.str()
		case "biz_mail":
			bit = 1 << 8
			u.BizMail, ok = p.str()
		case "is_leader_in_dept":
			bit = 1 << 9
			u.IsLeaderInDept, ok = p.ints()
		case "direct_leader":
			bit = 1 << 10
			u.DirectLeader, ok = p.strs()
		case "avatar":
			bit = 1 << 11
			u.Avatar, ok = p.str()
		case "thumb_avatar":
			bit = 1 << 12
			u.ThumbAvatar, ok = p.str()
		case "telephone":
			bit = 1 << 13
			u.Telephone, ok = p.str()
		case "alias":
			bit = 1 << 14
			u.Alias, ok = p.str()
		case "address":
			bit = 1 << 15
			u.Address, ok = p.str()
		case "open_userid":
			bit = 1 << 16
			u.OpenUserID, ok = p.str()
		case "main_department":
			bit = 1 << 17
			u.MainDepartment, ok = p.int()
		case "extattr":
			bit = 1 << 18
			ok = p.extAttr(&u.ExtAttr)
		case "status":
			bit = 1 << 19
			u.Status, ok = p.int()
		case "qr_code":
			bit = 1 << 20
			u.QRCode, ok = p.str()
		case "external_position":
			bit = 1 << 21
			u.ExternalPosition, ok = p.str()
		case "external_profile":
			bit = 1 << 22
			ok = p.nested(&u.ExternalProfile)
		case "english_name":
			bit = 1 << 23
			u.EnglishName, ok = p.str()
		case "enable":
			bit = 1 << 24
			u.Enable, ok = p.int()
		case "hide_mobile":
			bit = 1 << 25
			u.HideMobile, ok = p.int()
		case "is_leader":
			bit = 1 << 26
			u.IsLeader, ok = p.int()
		default:
			if foldsToUserKey(k) {
				return false
			}
			_, ok = p.raw()
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		p.ws()
		if p.consume(',') {
			continue
		}
		if !p.consume('}') {
			return false
		}
		p.ws()
		return p.i == len(p.b)
	}
}

// extAttr reads {"attrs":[…]} where every item is a text attribute
// {"type":0,"name":…,"text":{"value":…}} or a web attribute
// {"type":1,"name":…,"web":{"url":…,"title":…}}, the usual shapes; any
// other shape goes to encoding/json.
func (p *fastParser) extAttr(a *ExtAttr) bool {
	start := p.i
	if p.fastExtAttr(a) {
		return true
	}
	p.i = start
	*a = ExtAttr{}
	return p.nested(a)
}

func (p *fastParser) fastExtAttr(a *ExtAttr) bool {
	if !p.consume('{') {
		return false
	}
	k, ok := p.member()
	if !ok || string(k) != "attrs" {
		return false
	}
	if !p.consume('[') {
		return false
	}
	a.Attrs = []ExtAttrItem{}
	p.ws()
	if !p.consume(']') {
		for {
			p.ws()
			var it ExtAttrItem
			if !p.extAttrItem(&it) {
				return false
			}
			a.Attrs = append(a.Attrs, it)
			p.ws()
			if p.consume(',') {
				continue
			}
			if !p.consume(']') {
				return false
			}
			break
		}
	}
	p.ws()
	return p.consume('}')
}

// extAttrItem reads "type", "name" and one of "text" / "web", in any order.
func (p *fastParser) extAttrItem(it *ExtAttrItem) bool {
	if !p.consume('{') {
		return false
	}
	var seen uint8
	for {
		k, ok := p.member()
		if !ok {
			return false
		}
		var bit uint8
		switch string(k) {
		case "type":
			bit = 1
			it.Type, ok = p.int()
		case "name":
			bit = 2
			it.Name, ok = p.str()
		case "text":
			bit = 4
			it.Text = new(ExtAttrText)
			ok = p.object1("value", &it.Text.Value)
		case "web":
			bit = 8
			it.Web = new(ExtAttrWeb)
			ok = p.object2("url", &it.Web.URL, "title", &it.Web.Title)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		p.ws()
		if p.consume(',') {
			continue
		}
		return p.consume('}')
	}
}

// object1 reads {"k": "string"}.
func (p *fastParser) object1(k string, v *string) bool {
	if !p.consume('{') {
		return false
	}
	got, ok := p.member()
	if !ok || string(got) != k {
		return false
	}
	if *v, ok = p.str(); !ok {
		return false
	}
	p.ws()
	return p.consume('}')
}

// object2 reads {"k1": "string", "k2": "string"} in either order.
func (p *fastParser) object2(k1 string, v1 *string, k2 string, v2 *string) bool {
	if !p.consume('{') {
		return false
	}
	var seen uint8
	for {
		got, ok := p.member()
		if !ok {
			return false
		}
		switch {
		case string(got) == k1 && seen&1 == 0:
			seen |= 1
			*v1, ok = p.str()
		case string(got) == k2 && seen&2 == 0:
			seen |= 2
			*v2, ok = p.str()
		default:
			return false
		}
		if !ok {
			return false
		}
		p.ws()
		if p.consume(',') {
			continue
		}
		return p.consume('}')
	}
}

// unquoteFast decodes a JSON string token (with its quotes).
func unquoteFast(raw []byte) (string, bool) {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		p := fastParser{b: raw}
		if s, ok := p.str(); ok && p.i == len(raw) {
			return s, true
		}
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
