package userdata

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The official sample from WeChat's "AES decryption sample" demo code, also
// used by the tests of several SDKs.
const (
	officialAppID      = "wx4f4bc4dec97d474b"
	officialSessionKey = "tiihtNczf5v6AKRyjwEUhQ=="
	officialIV         = "r7BXXKkLb8qrSNn05n0qiA=="
	officialEncrypted  = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
	officialOpenID     = "oGZUI0egBJY1zhBYw2KhdUfwVJJE"
	officialPlaintext  = `{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}`
)

// canaryKey is easy to spot if it ever leaks into an error text.
var canaryKey = b64([]byte("LEAKCANARY-KEY16"))

var sentinels = []error{ErrMalformed, ErrDecrypt, ErrWatermark, ErrSignature}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func mustDecodeOfficial(t testing.TB) []byte {
	t.Helper()
	ct, err := base64.StdEncoding.DecodeString(officialEncrypted)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// encryptRaw CBC-encrypts already block-aligned plaintext without adding
// padding, so tests can plant any padding they like.
func encryptRaw(t testing.TB, keyB64 string, iv, pt []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(pt))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, pt)
	return b64(out)
}

// sentinelCount is how many of the package sentinels err wraps: the
// contract is exactly one for every error.
func sentinelCount(err error) int {
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

// assertNoLeak fails when the error text contains any of the secrets or
// inputs. Very short strings are skipped: they occur in any English text.
func assertNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	msg := err.Error()
	for _, s := range secrets {
		if len(s) < 4 {
			continue
		}
		if strings.Contains(msg, s) {
			t.Errorf("error text %q leaks %q", msg, s)
		}
	}
}

func TestDecryptOfficialVector(t *testing.T) {
	pt, err := Decrypt(officialSessionKey, officialEncrypted, officialIV)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if string(pt) != officialPlaintext {
		t.Fatalf("plaintext = %s", pt)
	}

	u, err := DecryptUserInfo(officialSessionKey, officialEncrypted, officialIV, officialAppID)
	if err != nil {
		t.Fatalf("DecryptUserInfo: %v", err)
	}
	want := UserInfo{
		OpenID:    officialOpenID,
		UnionID:   "ocMvos6NjeKLIBqg5Mr9QjxrP1FA",
		NickName:  "Band",
		AvatarURL: "http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0",
		Gender:    1,
		City:      "Guangzhou",
		Province:  "Guangdong",
		Country:   "CN",
		Language:  "zh_CN",
		Watermark: Watermark{AppID: officialAppID, Timestamp: 1477314187},
	}
	if *u != want {
		t.Fatalf("got  %+v\nwant %+v", *u, want)
	}
}

func TestDecryptTolerantBase64(t *testing.T) {
	noPad := func(s string) string { return strings.TrimRight(s, "=") }
	urlSafe := func(s string) string {
		return strings.NewReplacer("+", "-", "/", "_").Replace(s)
	}
	var wrapped strings.Builder
	for i := 0; i < len(officialEncrypted); i += 64 {
		wrapped.WriteString(officialEncrypted[i:min(i+64, len(officialEncrypted))])
		wrapped.WriteString("\r\n")
	}
	spaced := strings.ReplaceAll(officialEncrypted, "+", " ")
	if spaced == officialEncrypted {
		t.Fatal("the vector has no '+': the space case tests nothing")
	}
	tests := []struct {
		name              string
		key, data, ivText string
	}{
		{"spaces for plus", officialSessionKey, spaced, officialIV},
		{"missing padding", noPad(officialSessionKey), noPad(officialEncrypted), noPad(officialIV)},
		{"spaces and missing padding", officialSessionKey, noPad(spaced), officialIV},
		{"one of two padding chars", "tiihtNczf5v6AKRyjwEUhQ=", officialEncrypted[:len(officialEncrypted)-1], "r7BXXKkLb8qrSNn05n0qiA="},
		{"url-safe alphabet", urlSafe(officialSessionKey), urlSafe(officialEncrypted), urlSafe(officialIV)},
		{"wrapped lines", officialSessionKey, wrapped.String(), officialIV + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := DecryptUserInfo(tt.key, tt.data, tt.ivText, officialAppID)
			if err != nil {
				t.Fatalf("DecryptUserInfo: %v", err)
			}
			if u.NickName != "Band" || u.OpenID != officialOpenID {
				t.Fatalf("got %+v", u)
			}
		})
	}
}

func TestDecryptErrors(t *testing.T) {
	official := mustDecodeOfficial(t)
	key15, key17, key32 := b64(make([]byte, 15)), b64(make([]byte, 17)), b64(make([]byte, 32))
	iv := []byte("0123456789abcdef")
	ivText := b64(iv)

	// Plaintexts under the canary key: one block each, with the last byte
	// (or bytes) chosen to break the padding in each possible way.
	padBlock := func(body string, pad ...byte) []byte {
		b := []byte(body)
		b = append(b, pad...)
		if len(b)%aes.BlockSize != 0 {
			t.Fatalf("block %q is %d bytes", b, len(b))
		}
		return b
	}
	secretBody := `{"n":"SECRETPT` // 14 bytes, recognisable if leaked
	badPadZero := encryptRaw(t, canaryKey, iv, padBlock(secretBody, 0, 0))
	badPadBig := encryptRaw(t, canaryKey, iv, padBlock(secretBody, 17, 17))
	badPadMixed := encryptRaw(t, canaryKey, iv, padBlock(`{"n":"SECRETP`, 2, 3, 3))
	badPadWholeBlock := encryptRaw(t, canaryKey, iv, padBlock(`{"n":"SECRETPT"}`, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 17))

	enc := func(pt string) (string, string) {
		t.Helper()
		d, v, err := Encrypt(canaryKey, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		return d, v
	}
	notJSONData, notJSONIV := enc("SECRETPLAINTEXT, not JSON at all")
	arrayData, arrayIV := enc(`["SECRETPLAINTEXT"]`)
	truncData, truncIV := enc(`{"nickName":"SECRETPLAINTEXT"`)
	shapeData, shapeIV := enc(`{"openId":12345,"nickName":"SECRETPLAINTEXT","watermark":{"appid":"wx4f4bc4dec97d474b"}}`)
	genderData, genderIV := enc(`{"gender":"SECRETPLAINTEXT","watermark":{"appid":"wx4f4bc4dec97d474b"}}`)
	noMarkData, noMarkIV := enc(`{"openId":"SECRETOPENID","nickName":"SECRETNICK"}`)
	emptyMarkData, emptyMarkIV := enc(`{"openId":"SECRETOPENID","watermark":{"appid":"","timestamp":1}}`)
	nullMarkData, nullMarkIV := enc(`{"openId":"SECRETOPENID","watermark":null}`)

	tooLong := strings.Repeat("A", MaxEncryptedLen+4)

	tests := []struct {
		name              string
		key, data, ivText string
		appid             string
		want              error
	}{
		// Bad base64 in each input.
		{"key bad base64", "tiih!Nczf5v6AKRyjwEUhQ==", officialEncrypted, officialIV, officialAppID, ErrMalformed},
		{"key tab", "tiihtNczf5v6\tAKRyjwEUhQ==", officialEncrypted, officialIV, officialAppID, ErrMalformed},
		{"data bad base64", officialSessionKey, "CiyL*1Aw" + officialEncrypted[8:], officialIV, officialAppID, ErrMalformed},
		{"data too much padding", officialSessionKey, officialEncrypted + "=", officialIV, officialAppID, ErrMalformed},
		{"iv bad base64", officialSessionKey, officialEncrypted, "r7BXXKkLb8qrSNn0%n0qiA==", officialAppID, ErrMalformed},
		{"iv padding inside", officialSessionKey, officialEncrypted, "r7BXXKkLb8q=SNn05n0qiA==", officialAppID, ErrMalformed},
		{"iv impossible length", officialSessionKey, officialEncrypted, "r7BXXKkLb8qrSNn05n0qi", officialAppID, ErrMalformed},

		// Key and iv sizes.
		{"key empty", "", officialEncrypted, officialIV, officialAppID, ErrMalformed},
		{"key 15 bytes", key15, officialEncrypted, officialIV, officialAppID, ErrMalformed},
		{"key 17 bytes", key17, officialEncrypted, officialIV, officialAppID, ErrMalformed},
		{"key 32 bytes (AES-256 must not slip through)", key32, officialEncrypted, officialIV, officialAppID, ErrMalformed},
		{"key very long", strings.Repeat("A", 4096), officialEncrypted, officialIV, officialAppID, ErrMalformed},
		{"iv empty", officialSessionKey, officialEncrypted, "", officialAppID, ErrMalformed},
		{"iv 15 bytes", officialSessionKey, officialEncrypted, b64(iv[:15]), officialAppID, ErrMalformed},
		{"iv 17 bytes", officialSessionKey, officialEncrypted, b64(append(iv[:16:16], 'x')), officialAppID, ErrMalformed},

		// Ciphertext shape.
		{"data empty", officialSessionKey, "", officialIV, officialAppID, ErrMalformed},
		{"data only padding", officialSessionKey, "==", officialIV, officialAppID, ErrMalformed},
		{"data only newlines", officialSessionKey, "\r\n\n", officialIV, officialAppID, ErrMalformed},
		{"data 17 bytes", officialSessionKey, b64(official[:17]), officialIV, officialAppID, ErrMalformed},
		{"data 399 bytes", officialSessionKey, b64(official[:399]), officialIV, officialAppID, ErrMalformed},
		{"data 15 bytes", officialSessionKey, b64(official[:15]), officialIV, officialAppID, ErrMalformed},
		{"data too long", officialSessionKey, tooLong, officialIV, officialAppID, ErrMalformed},

		// Decrypts, but not to a padded JSON object.
		{"padding byte 0", canaryKey, badPadZero, ivText, officialAppID, ErrDecrypt},
		{"padding byte 17", canaryKey, badPadBig, ivText, officialAppID, ErrDecrypt},
		{"padding bytes inconsistent", canaryKey, badPadMixed, ivText, officialAppID, ErrDecrypt},
		{"padding 16 with one byte off", canaryKey, badPadWholeBlock, ivText, officialAppID, ErrDecrypt},
		{"wrong (stale) session key", canaryKey, officialEncrypted, officialIV, officialAppID, ErrDecrypt},
		{"wrong iv", officialSessionKey, officialEncrypted, ivText, officialAppID, ErrDecrypt},
		{"last block dropped", officialSessionKey, b64(official[:384]), officialIV, officialAppID, ErrDecrypt},
		{"plaintext not JSON", canaryKey, notJSONData, notJSONIV, officialAppID, ErrDecrypt},
		{"plaintext JSON array", canaryKey, arrayData, arrayIV, officialAppID, ErrDecrypt},
		{"plaintext truncated JSON", canaryKey, truncData, truncIV, officialAppID, ErrDecrypt},
		{"plaintext wrong field type", canaryKey, shapeData, shapeIV, officialAppID, ErrDecrypt},
		{"plaintext gender not a number", canaryKey, genderData, genderIV, officialAppID, ErrDecrypt},

		// Watermark.
		{"wrong watermark appid", officialSessionKey, officialEncrypted, officialIV, "wx0000000000000000", ErrWatermark},
		{"empty appid never matches", officialSessionKey, officialEncrypted, officialIV, "", ErrWatermark},
		{"watermark missing", canaryKey, noMarkData, noMarkIV, officialAppID, ErrWatermark},
		{"watermark appid empty", canaryKey, emptyMarkData, emptyMarkIV, "", ErrWatermark},
		{"watermark null", canaryKey, nullMarkData, nullMarkIV, officialAppID, ErrWatermark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := DecryptUserInfo(tt.key, tt.data, tt.ivText, tt.appid)
			if err == nil {
				t.Fatalf("DecryptUserInfo succeeded: %+v", u)
			}
			if u != nil {
				t.Errorf("non-nil UserInfo with error")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %q does not wrap %q", err, tt.want)
			}
			if n := sentinelCount(err); n != 1 {
				t.Errorf("error %q wraps %d sentinels, want 1", err, n)
			}
			assertNoLeak(t, err, tt.key, strings.TrimRight(tt.key, "="), tt.data, tt.ivText, tt.appid,
				canaryKey, "LEAKCANARY", officialSessionKey, officialAppID, officialOpenID, "Band",
				"SECRET", officialPlaintext)
			if errors.Is(err, ErrDecrypt) && !strings.Contains(err.Error(), "session_key") &&
				!strings.Contains(err.Error(), "user info") {
				t.Errorf("ErrDecrypt text %q neither blames the session_key nor the shape", err)
			}

			// Decrypt alone agrees up to the JSON shape.
			if tt.want == ErrMalformed || (tt.want == ErrDecrypt && !strings.Contains(tt.name, "field type") &&
				!strings.Contains(tt.name, "gender")) {
				pt, derr := Decrypt(tt.key, tt.data, tt.ivText)
				if !errors.Is(derr, tt.want) {
					t.Errorf("Decrypt: got %v (plaintext %d bytes), want %v", derr, len(pt), tt.want)
				}
			}
		})
	}
}

func TestDecryptStaleKeyMessage(t *testing.T) {
	_, err := Decrypt(canaryKey, officialEncrypted, officialIV)
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"stale", "session_key", "wx.login", "log in again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// Bad padding and valid padding without JSON must read the same, or the
// error text becomes a padding oracle.
func TestDecryptNoPaddingOracle(t *testing.T) {
	iv := make([]byte, 16)
	_, errPad := Decrypt(canaryKey, encryptRaw(t, canaryKey, iv, []byte("0123456789abcde\x00")), b64(iv))
	_, errJSON := Decrypt(canaryKey, encryptRaw(t, canaryKey, iv, []byte("0123456789abcde\x01")), b64(iv))
	if errPad == nil || errJSON == nil || errPad.Error() != errJSON.Error() {
		t.Fatalf("padding error %q differs from JSON error %q", errPad, errJSON)
	}
}

func TestUnpad(t *testing.T) {
	block := func(tail ...byte) []byte {
		b := bytes.Repeat([]byte{'x'}, 32-len(tail))
		return append(b, tail...)
	}
	full := bytes.Repeat([]byte{16}, 16)
	tests := []struct {
		name string
		in   []byte
		want int // remaining length, -1 for rejected
	}{
		{"1", block(1), 31},
		{"2", block(2, 2), 30},
		{"15", block(bytes.Repeat([]byte{15}, 15)...), 17},
		{"16", block(full...), 16},
		{"16 over two blocks", append(bytes.Repeat([]byte{'x'}, 16), full...), 16},
		{"0", block(0), -1},
		{"17", block(bytes.Repeat([]byte{17}, 17)...), -1},
		{"255", block(255), -1},
		{"inconsistent", block(1, 3, 3), -1},
		{"inconsistent at the far end", block(append([]byte{15}, bytes.Repeat([]byte{16}, 15)...)...), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := unpad(tt.in)
			if tt.want < 0 {
				if ok {
					t.Fatalf("accepted, %d bytes left", len(out))
				}
				return
			}
			if !ok || len(out) != tt.want {
				t.Fatalf("ok=%v len=%d, want %d", ok, len(out), tt.want)
			}
		})
	}
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	// Every padding length from 1 to 16, and multi-block payloads.
	for n := 0; n < 64; n++ {
		pt, err := json.Marshal(map[string]any{
			"openId":    "o" + strings.Repeat("x", n),
			"gender":    2,
			"watermark": map[string]any{"appid": "wxtest", "timestamp": 1700000000},
		})
		if err != nil {
			t.Fatal(err)
		}
		data, iv, err := Encrypt(canaryKey, pt)
		if err != nil {
			t.Fatalf("n=%d: Encrypt: %v", n, err)
		}
		got, err := Decrypt(canaryKey, data, iv)
		if err != nil {
			t.Fatalf("n=%d: Decrypt: %v", n, err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("n=%d: round trip gave %s, want %s", n, got, pt)
		}
		u, err := DecryptUserInfo(canaryKey, data, iv, "wxtest")
		if err != nil || u.Gender != 2 || u.Watermark.Timestamp != 1700000000 {
			t.Fatalf("n=%d: DecryptUserInfo = %+v, %v", n, u, err)
		}
	}
}

func TestEncryptFreshIV(t *testing.T) {
	pt := []byte(`{"a":1}`)
	d1, iv1, err1 := Encrypt(officialSessionKey, pt)
	d2, iv2, err2 := Encrypt(officialSessionKey, pt)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if iv1 == iv2 || d1 == d2 {
		t.Fatal("two encryptions share an iv or a ciphertext")
	}
}

func TestEncryptErrors(t *testing.T) {
	for _, key := range []string{"", "!!!!", b64(make([]byte, 15)), b64(make([]byte, 32))} {
		_, _, err := Encrypt(key, []byte(`{}`))
		if !errors.Is(err, ErrMalformed) || sentinelCount(err) != 1 {
			t.Errorf("Encrypt(%q): got %v, want ErrMalformed", key, err)
		}
	}
	// The largest plaintext whose encryptedData is exactly MaxEncryptedLen
	// must round-trip; one byte more must be refused by both sides.
	maxPT := MaxEncryptedLen/4*3 - 1
	big := []byte(`{"openId":"o","watermark":{"appid":"wxtest"},"x":"` +
		strings.Repeat("y", maxPT-len(`{"openId":"o","watermark":{"appid":"wxtest"},"x":""}`)) + `"}`)
	if len(big) != maxPT {
		t.Fatalf("built %d bytes, want %d", len(big), maxPT)
	}
	data, iv, err := Encrypt(canaryKey, big)
	if err != nil {
		t.Fatalf("Encrypt at the limit: %v", err)
	}
	if len(data) != MaxEncryptedLen {
		t.Fatalf("encryptedData is %d characters, want %d", len(data), MaxEncryptedLen)
	}
	if _, err := DecryptUserInfo(canaryKey, data, iv, "wxtest"); err != nil {
		t.Fatalf("DecryptUserInfo at the limit: %v", err)
	}
	_, _, err = Encrypt(canaryKey, append(big, ' '))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Encrypt over the limit: got %v, want ErrMalformed", err)
	}
	assertNoLeak(t, err, canaryKey, "yyyyyyyy")
}

func TestFlexibleNumbers(t *testing.T) {
	tests := []struct {
		json      string
		gender    int
		timestamp int64
		want      error
	}{
		{`{"gender":1,"watermark":{"appid":"a","timestamp":1477314187}}`, 1, 1477314187, nil},
		{`{"gender":"2","watermark":{"appid":"a","timestamp":"1477314187"}}`, 2, 1477314187, nil},
		{`{"gender":"","watermark":{"appid":"a","timestamp":""}}`, 0, 0, nil},
		{`{"gender":null,"watermark":{"appid":"a","timestamp":null}}`, 0, 0, nil},
		{`{"watermark":{"appid":"a"}}`, 0, 0, nil},
		{` {"gender":-1,"watermark":{"appid":"a"}} `, -1, 0, nil},
		{`{"gender":1.5,"watermark":{"appid":"a"}}`, 0, 0, ErrDecrypt},
		{`{"gender":"male","watermark":{"appid":"a"}}`, 0, 0, ErrDecrypt},
		{`{"gender":true,"watermark":{"appid":"a"}}`, 0, 0, ErrDecrypt},
		{`{"gender":"1","watermark":{"appid":"a","timestamp":"soon"}}`, 0, 0, ErrDecrypt},
		{`{"watermark":{"appid":"a","timestamp":99999999999999999999}}`, 0, 0, ErrDecrypt},
	}
	for _, tt := range tests {
		data, iv, err := Encrypt(canaryKey, []byte(tt.json))
		if err != nil {
			t.Fatal(err)
		}
		u, err := DecryptUserInfo(canaryKey, data, iv, "a")
		if tt.want != nil {
			if !errors.Is(err, tt.want) {
				t.Errorf("%s: got %+v, %v; want %v", tt.json, u, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.json, err)
			continue
		}
		if u.Gender != tt.gender || u.Watermark.Timestamp != tt.timestamp || u.Watermark.AppID != "a" {
			t.Errorf("%s: got %+v", tt.json, u)
		}
	}
}

func BenchmarkDecryptUserInfo(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(officialEncrypted)))
	for b.Loop() {
		if _, err := DecryptUserInfo(officialSessionKey, officialEncrypted, officialIV, officialAppID); err != nil {
			b.Fatal(err)
		}
	}
}
