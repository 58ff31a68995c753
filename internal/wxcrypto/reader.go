package wxcrypto

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"io"
)

// chunkSize is how much ciphertext the streaming reader decrypts at a time.
const chunkSize = 64 << 10

// DecryptReader decrypts an AES-256-CBC stream (IV = key[:16]) with 32-byte
// PKCS#7 padding. It holds back the last 32 plaintext bytes until the source
// ends, so the padding is checked before the final bytes are handed out: a
// reader that returns io.EOF has returned exactly the plaintext. A stream
// whose length is not a multiple of 16, or whose padding is wrong, ends in
// ErrCiphertextLength or ErrBadPadding instead.
type DecryptReader struct {
	src  io.Reader
	mode cipher.BlockMode

	in   []byte // ciphertext buffer; in[:inN] read but not yet decrypted
	inN  int
	out  []byte // plaintext ready to hand out: out[outR:]
	outR int
	tail []byte // last <= 32 plaintext bytes, held back for the padding check
	err  error  // sticky error, or io.EOF once tail has been released
}

// NewDecryptReader returns a DecryptReader over src.
func NewDecryptReader(src io.Reader, key []byte) (*DecryptReader, error) {
	block, iv, err := newCBC(key)
	if err != nil {
		return nil, err
	}
	return &DecryptReader{
		src:  src,
		mode: cipher.NewCBCDecrypter(block, iv),
		in:   make([]byte, chunkSize),
		tail: make([]byte, 0, BlockSize),
	}, nil
}

// Read implements io.Reader.
func (d *DecryptReader) Read(p []byte) (int, error) {
	for d.outR == len(d.out) {
		if d.err != nil {
			return 0, d.err
		}
		d.fill()
	}
	n := copy(p, d.out[d.outR:])
	d.outR += n
	return n, nil
}

// fill reads more ciphertext and moves the decrypted part into out, keeping
// the last BlockSize bytes of plaintext in tail.
func (d *DecryptReader) fill() {
	n, err := io.ReadAtLeast(d.src, d.in[d.inN:], aes.BlockSize)
	d.inN += n
	full := d.inN - d.inN%aes.BlockSize
	if full > 0 {
		buf := d.in[:full]
		d.mode.CryptBlocks(buf, buf)
		// plaintext stream so far = tail || buf; hand out all but the last 32.
		total := len(d.tail) + full
		release := total - BlockSize
		d.out = d.out[:0]
		d.outR = 0
		if release > 0 {
			fromTail := min(release, len(d.tail))
			d.out = append(d.out, d.tail[:fromTail]...)
			d.out = append(d.out, buf[:release-fromTail]...)
			newTail := append(d.tail[:0:0], d.tail[fromTail:]...)
			newTail = append(newTail, buf[release-fromTail:]...)
			d.tail = append(d.tail[:0], newTail...)
		} else {
			d.tail = append(d.tail, buf...)
		}
		// keep the undecrypted remainder at the front of in
		rest := copy(d.in, d.in[full:d.inN])
		d.inN = rest
	}
	switch {
	case err == nil:
		return
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if d.inN != 0 || len(d.tail) == 0 {
			d.err = ErrCiphertextLength
			return
		}
		plain, perr := Unpad(d.tail)
		if perr != nil {
			d.err = perr
			return
		}
		d.out = append(d.out, plain...)
		d.tail = d.tail[:0]
		d.err = io.EOF
	default:
		d.err = err
	}
}
