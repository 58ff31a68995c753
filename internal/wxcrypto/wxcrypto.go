// Package wxcrypto implements the cryptography WeCom uses for callbacks and
// export files: the 43-character EncodingAESKey, AES-256-CBC with the key's
// first 16 bytes as IV, PKCS#7 padding to a 32-byte block, the SHA-1 message
// signature, and the callback message framing
// (random16 || uint32be(len) || msg || receiverID).
//
// See https://developer.work.weixin.qq.com/document/path/91144 (callbacks)
// and https://developer.work.weixin.qq.com/document/path/94849 (exports).
//
// Nothing in this package ever puts key material into an error string.
package wxcrypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// BlockSize is the PKCS#7 block size WeCom pads to. It is 32, not the AES
// block size of 16: pad values 17..32 are legal.
const BlockSize = 32

// KeyLen is the length of an EncodingAESKey string.
const KeyLen = 43

var (
	// ErrInvalidKey reports an EncodingAESKey that is not 43 characters of
	// [A-Za-z0-9] decoding to 32 bytes.
	ErrInvalidKey = errors.New("wxcrypto: invalid EncodingAESKey (want 43 characters of [A-Za-z0-9])")
	// ErrBadPadding reports a plaintext whose PKCS#7 padding is not valid for
	// block size 32, which is what a wrong key or a corrupted ciphertext gives.
	ErrBadPadding = errors.New("wxcrypto: bad PKCS#7 padding (wrong key or corrupted data)")
	// ErrCiphertextLength reports a ciphertext that is empty or not a multiple
	// of the AES block size.
	ErrCiphertextLength = errors.New("wxcrypto: ciphertext length is not a positive multiple of 16")
	// ErrMalformedMessage reports a decrypted callback message whose framing
	// (random prefix, length field) is inconsistent.
	ErrMalformedMessage = errors.New("wxcrypto: malformed callback message framing")
)

// ValidKey reports whether s has the shape of an EncodingAESKey: exactly 43
// characters of [A-Za-z0-9].
func ValidKey(s string) bool {
	if len(s) != KeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// DecodeKey turns an EncodingAESKey into the 32-byte AES key:
// Base64Decode(encodingAESKey + "=").
func DecodeKey(encodingAESKey string) ([]byte, error) {
	if !ValidKey(encodingAESKey) {
		return nil, ErrInvalidKey
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, ErrInvalidKey
	}
	return key, nil
}

// NewKey returns a fresh random EncodingAESKey from crypto/rand.
func NewKey() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [KeyLen]byte
	// Rejection sampling keeps the distribution uniform over the 62 symbols.
	buf := make([]byte, 64)
	n := 0
	for n < KeyLen {
		if _, err := rand.Read(buf); err != nil {
			// crypto/rand.Read never fails on supported platforms (Go 1.24+
			// crashes the program instead), so this is unreachable.
			panic("wxcrypto: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			if c < 248 { // 248 = 4*62
				b[n] = alphabet[int(c)%62]
				n++
				if n == KeyLen {
					break
				}
			}
		}
	}
	return string(b[:])
}

// Pad appends PKCS#7 padding to a multiple of BlockSize (1..32 bytes).
func Pad(b []byte) []byte {
	k := BlockSize - len(b)%BlockSize
	for i := 0; i < k; i++ {
		b = append(b, byte(k))
	}
	return b
}

// Unpad removes and checks PKCS#7 padding for block size 32. Every pad byte
// is checked.
func Unpad(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, ErrBadPadding
	}
	k := int(b[len(b)-1])
	if k < 1 || k > BlockSize || k > len(b) {
		return nil, ErrBadPadding
	}
	var bad byte
	for _, c := range b[len(b)-k:] {
		bad |= c ^ byte(k)
	}
	if bad != 0 {
		return nil, ErrBadPadding
	}
	return b[:len(b)-k], nil
}

func newCBC(key []byte) (cipher.Block, []byte, error) {
	if len(key) != 32 {
		return nil, nil, ErrInvalidKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, ErrInvalidKey
	}
	return block, key[:aes.BlockSize], nil
}

// Encrypt pads plaintext to 32 bytes and encrypts it with AES-256-CBC,
// IV = key[:16]. It does not modify plaintext.
func Encrypt(key, plaintext []byte) ([]byte, error) {
	block, iv, err := newCBC(key)
	if err != nil {
		return nil, err
	}
	buf := Pad(append(make([]byte, 0, len(plaintext)+BlockSize), plaintext...))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	return buf, nil
}

// Decrypt decrypts AES-256-CBC (IV = key[:16]) and strips the 32-byte
// PKCS#7 padding. It does not modify ciphertext.
func Decrypt(key, ciphertext []byte) ([]byte, error) {
	block, iv, err := newCBC(key)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, ErrCiphertextLength
	}
	buf := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(buf, ciphertext)
	return Unpad(buf)
}

// Signature computes WeCom's msg_signature: SHA-1 over the byte-wise sorted
// concatenation of token, timestamp, nonce and data, as lower-case hex.
func Signature(token, timestamp, nonce, data string) string {
	parts := []string{token, timestamp, nonce, data}
	sort.Strings(parts)
	h := sha1.New()
	for _, p := range parts {
		io.WriteString(h, p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// VerifySignature reports, in constant time, whether sig is the signature of
// the four values.
func VerifySignature(token, timestamp, nonce, data, sig string) bool {
	want := Signature(token, timestamp, nonce, data)
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(sig)), []byte(want)) == 1
}

// EncryptMessage frames msg as random16 || uint32be(len(msg)) || msg ||
// receiverID, encrypts it and returns the base64 text for an Encrypt
// element. random must be 16 bytes, or nil for 16 fresh random bytes.
func EncryptMessage(key, random, msg []byte, receiverID string) (string, error) {
	if random == nil {
		random = make([]byte, 16)
		rand.Read(random)
	}
	if len(random) != 16 {
		return "", fmt.Errorf("wxcrypto: random prefix must be 16 bytes, got %d", len(random))
	}
	plain := make([]byte, 0, 20+len(msg)+len(receiverID)+BlockSize)
	plain = append(plain, random...)
	plain = binary.BigEndian.AppendUint32(plain, uint32(len(msg)))
	plain = append(plain, msg...)
	plain = append(plain, receiverID...)
	ct, err := Encrypt(key, plain)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// DecryptMessage reverses EncryptMessage: it base64-decodes, decrypts,
// checks the padding and the length field, and returns the message and the
// receiver id that trailed it. The caller compares the receiver id.
func DecryptMessage(key []byte, encrypted string) (msg []byte, receiverID string, err error) {
	ct, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil {
		return nil, "", fmt.Errorf("wxcrypto: encrypted text is not valid base64: %w", ErrMalformedMessage)
	}
	plain, err := Decrypt(key, ct)
	if err != nil {
		return nil, "", err
	}
	if len(plain) < 20 {
		return nil, "", ErrMalformedMessage
	}
	n := binary.BigEndian.Uint32(plain[16:20])
	if uint64(n) > uint64(len(plain)-20) {
		return nil, "", ErrMalformedMessage
	}
	return plain[20 : 20+n], string(plain[20+n:]), nil
}
