package wecom

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// This file holds the streaming reader of export files. An export file is
// one JSON object whose interesting values are large arrays ("userlist":
// up to 10^6 members). exportDecoder walks the top level of that object
// without building it, and hands out the raw bytes of one array element at
// a time; the element is then decoded on its own (for members by
// decodeUser, a specialised decoder that falls back to encoding/json). Its
// buffer holds one element plus one read, so memory does not depend on the
// number of records.

const (
	exportDecodeBuf = 256 << 10 // initial buffer
	exportMaxValue  = 64 << 20  // the largest single record or value
)

type decState int

const (
	stBegin    decState = iota // before '{'
	stFirstKey                 // after '{': a key or '}'
	stKey                      // after ',': a key
	stAfter                    // after a member: ',' or '}'
	stArrFirst                 // after '[': an element or ']'
	stArrNext                  // after an element: ',' or ']'
	stEnd                      // after the object: only white space
)

// exportDecoder reads the top level of an export file's JSON object.
type exportDecoder struct {
	r              io.Reader
	file           int
	arrays, values []string

	buf      []byte
	pos, end int
	base     int64 // stream offset of buf[0]
	eof      bool
	state    decState
	field    string // the array being read
	valOff   int64  // stream offset of the last value handed out
	err      error  // sticky
}

func newExportDecoder(r io.Reader, file int, arrays, values []string) *exportDecoder {
	return &exportDecoder{r: r, file: file, arrays: arrays, values: values, buf: make([]byte, exportDecodeBuf)}
}

// fail records err (about the value last handed out) as the decoder's
// final error and returns it as an *ExportDecodeError.
func (d *exportDecoder) fail(err error) error {
	var de *ExportDecodeError
	if !errors.As(err, &de) {
		err = &ExportDecodeError{File: d.file, Offset: d.valOff, Err: err}
	}
	d.err = err
	return err
}

func (d *exportDecoder) syntax(format string, args ...any) error {
	return d.failAt(d.base+int64(d.pos), fmt.Errorf(format, args...))
}

func (d *exportDecoder) failAt(off int64, err error) error {
	d.valOff = off
	return d.fail(err)
}

// fill keeps buf[keep:end], moving it to the front, and reads more. It
// returns the new index of keep. At the end of the stream it sets d.eof.
func (d *exportDecoder) fill(keep int) (int, error) {
	if keep > 0 {
		n := copy(d.buf, d.buf[keep:d.end])
		d.pos -= keep
		d.base += int64(keep)
		d.end = n
		keep = 0
	}
	if d.end == len(d.buf) {
		if len(d.buf) >= exportMaxValue {
			return keep, d.failAt(d.base, fmt.Errorf("a value is larger than %d bytes", exportMaxValue))
		}
		d.buf = slices.Grow(d.buf[:d.end], len(d.buf))[:2*len(d.buf)]
	}
	for range 100 {
		n, err := d.r.Read(d.buf[d.end:])
		d.end += n
		if err == io.EOF {
			d.eof = true
			return keep, nil
		}
		if err != nil {
			d.err = fmt.Errorf("wecom: export data file %d: %w", d.file, err)
			return keep, d.err
		}
		if n > 0 {
			return keep, nil
		}
	}
	d.err = fmt.Errorf("wecom: export data file %d: %w", d.file, io.ErrNoProgress)
	return keep, d.err
}

// peek skips white space and returns the next byte, without consuming it.
func (d *exportDecoder) peek() (byte, error) {
	for {
		for d.pos < d.end {
			switch c := d.buf[d.pos]; c {
			case ' ', '\t', '\r', '\n':
				d.pos++
			default:
				return c, nil
			}
		}
		if d.eof {
			return 0, d.failAt(d.base+int64(d.pos), io.ErrUnexpectedEOF)
		}
		if _, err := d.fill(d.pos); err != nil {
			return 0, err
		}
	}
}

// value scans the next value. With capture it returns its bytes (valid
// until the next call); otherwise it streams past it.
func (d *exportDecoder) value(capture bool) ([]byte, error) {
	var s valueScan
	start := d.pos
	d.valOff = d.base + int64(d.pos)
	for {
		n, done, err := s.step(d.buf[d.pos:d.end])
		d.pos += n
		if err != nil {
			return nil, d.failAt(d.base+int64(d.pos), err)
		}
		if !done && d.eof {
			if !s.scalar || s.depth != 0 {
				return nil, d.failAt(d.base+int64(d.pos), io.ErrUnexpectedEOF)
			}
			done = true // a bare scalar ends the stream
		}
		if done {
			if !capture {
				return nil, nil
			}
			return d.buf[start:d.pos], nil
		}
		if !capture {
			start = d.pos
		}
		if start, err = d.fill(start); err != nil {
			return nil, err
		}
	}
}

// key reads an object key and the colon after it.
func (d *exportDecoder) key() (string, error) {
	raw, err := d.value(true)
	if err != nil {
		return "", err
	}
	if len(raw) < 2 || raw[0] != '"' {
		return "", d.failAt(d.valOff, errors.New("object key is not a string"))
	}
	k, ok := unquoteFast(raw)
	if !ok {
		return "", d.failAt(d.valOff, errors.New("invalid object key"))
	}
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	if c != ':' {
		return "", d.syntax("expected ':' after object key, found %q", c)
	}
	d.pos++
	return k, nil
}

// next returns the next element of a wanted array, or the value of a
// wanted key, with the key it belongs to; io.EOF after the end of the
// object. Other keys are skipped.
func (d *exportDecoder) next() (string, []byte, error) {
	for d.err == nil {
		switch d.state {
		case stBegin:
			c, err := d.peek()
			if err != nil {
				if d.base+int64(d.pos) == 0 {
					return "", nil, d.failAt(0, errors.New("empty file"))
				}
				return "", nil, err
			}
			if c != '{' {
				return "", nil, d.syntax("file does not start with a JSON object (found %q)", c)
			}
			d.pos++
			d.state = stFirstKey
		case stFirstKey, stKey:
			c, err := d.peek()
			if err != nil {
				return "", nil, err
			}
			if c == '}' && d.state == stFirstKey {
				d.pos++
				d.state = stEnd
				continue
			}
			if c != '"' {
				return "", nil, d.syntax("expected an object key, found %q", c)
			}
			k, err := d.key()
			if err != nil {
				return "", nil, err
			}
			if c, err = d.peek(); err != nil {
				return "", nil, err
			}
			d.state = stAfter
			switch {
			case slices.Contains(d.arrays, k):
				if c == '[' {
					d.pos++
					d.field = k
					d.state = stArrFirst
					continue
				}
				raw, err := d.value(true)
				if err != nil {
					return "", nil, err
				}
				if string(raw) != "null" {
					return "", nil, d.failAt(d.valOff, fmt.Errorf("%q is not an array", k))
				}
			case slices.Contains(d.values, k):
				raw, err := d.value(true)
				if err != nil {
					return "", nil, err
				}
				return k, raw, nil
			default:
				if _, err := d.value(false); err != nil {
					return "", nil, err
				}
			}
		case stAfter:
			c, err := d.peek()
			if err != nil {
				return "", nil, err
			}
			switch c {
			case ',':
				d.state = stKey
			case '}':
				d.state = stEnd
			default:
				return "", nil, d.syntax("expected ',' or '}' after object member, found %q", c)
			}
			d.pos++
		case stArrFirst, stArrNext:
			c, err := d.peek()
			if err != nil {
				return "", nil, err
			}
			if c == ']' {
				d.pos++
				d.state = stAfter
				continue
			}
			if d.state == stArrNext {
				if c != ',' {
					return "", nil, d.syntax("expected ',' or ']' in %q, found %q", d.field, c)
				}
				d.pos++
				if _, err := d.peek(); err != nil {
					return "", nil, err
				}
			}
			raw, err := d.value(true)
			if err != nil {
				return "", nil, err
			}
			d.state = stArrNext
			return d.field, raw, nil
		case stEnd:
			for {
				for d.pos < d.end {
					switch d.buf[d.pos] {
					case ' ', '\t', '\r', '\n':
						d.pos++
					default:
						return "", nil, d.syntax("data after the end of the JSON object")
					}
				}
				if d.eof {
					d.err = io.EOF
					return "", nil, io.EOF
				}
				if _, err := d.fill(d.pos); err != nil {
					return "", nil, err
				}
			}
		}
	}
	return "", nil, d.err
}

// valueScan finds the end of one JSON value, across as many buffers as it
// takes. It checks nesting and strings only; the value's decoder checks
// the rest.
type valueScan struct {
	depth  int
	inStr  bool
	esc    bool // the previous buffer ended inside a string with an odd run of '\'
	scalar bool // a bare number or literal at depth 0
}

// step scans b. It returns how much of b it consumed and whether the value
// ended (a scalar ends before its delimiter, which is not consumed).
func (s *valueScan) step(b []byte) (int, bool, error) {
	i := 0
	for i < len(b) {
		if s.inStr {
			if s.esc {
				s.esc = false
				i++
				continue
			}
			j := bytes.IndexByte(b[i:], '"')
			if j < 0 {
				t := 0
				for t < len(b)-i && b[len(b)-1-t] == '\\' {
					t++
				}
				s.esc = t%2 == 1
				return len(b), false, nil
			}
			q := i + j
			t := 0
			for q-1-t >= i && b[q-1-t] == '\\' {
				t++
			}
			i = q + 1
			if t%2 == 1 {
				continue // an escaped quote
			}
			s.inStr = false
			if s.depth == 0 {
				return i, true, nil
			}
			continue
		}
		switch c := b[i]; c {
		case '"':
			if s.scalar {
				return i, true, nil
			}
			s.inStr = true
		case '{', '[':
			if s.scalar {
				return i, true, nil
			}
			s.depth++
		case '}', ']':
			if s.depth == 0 {
				if s.scalar {
					return i, true, nil
				}
				return i, false, fmt.Errorf("unexpected %q", c)
			}
			s.depth--
			if s.depth == 0 {
				return i + 1, true, nil
			}
		case ' ', '\t', '\r', '\n', ',', ':':
			if s.depth == 0 {
				if s.scalar {
					return i, true, nil
				}
				return i, false, fmt.Errorf("unexpected %q", c)
			}
		default:
			if s.depth == 0 {
				s.scalar = true
			}
		}
		i++
	}
	return i, false, nil
}
