package userdata

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecrypt feeds arbitrary session keys, ciphertexts and ivs: nothing may
// panic (CryptBlocks does on partial blocks), every error must wrap exactly
// one sentinel, and whatever decrypts must be a JSON object that survives a
// round trip through Encrypt.
func FuzzDecrypt(f *testing.F) {
	official, _ := base64.StdEncoding.DecodeString(officialEncrypted)
	f.Add(officialSessionKey, officialEncrypted, officialIV)
	f.Add(officialSessionKey, strings.ReplaceAll(officialEncrypted, "+", " "), strings.TrimRight(officialIV, "="))
	f.Add(officialSessionKey, base64.StdEncoding.EncodeToString(official[:399]), officialIV)
	f.Add(officialSessionKey, base64.StdEncoding.EncodeToString(official[:17]), officialIV)
	f.Add(officialSessionKey, officialEncrypted, base64.StdEncoding.EncodeToString(make([]byte, 15)))
	f.Add(canaryKey, officialEncrypted, officialIV)
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)), officialEncrypted, officialIV)
	f.Add("", "", "")

	f.Fuzz(func(t *testing.T, sessionKey, encryptedData, iv string) {
		pt, err := Decrypt(sessionKey, encryptedData, iv)
		if err != nil {
			if n := sentinelCount(err); n != 1 {
				t.Fatalf("Decrypt error %q wraps %d sentinels", err, n)
			}
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
		} else {
			if !startsObject(pt) || !json.Valid(pt) {
				t.Fatalf("Decrypt returned a non-object %q", pt)
			}
			data2, iv2, err := Encrypt(sessionKey, pt)
			if err != nil {
				t.Fatalf("Encrypt of a decrypted plaintext: %v", err)
			}
			pt2, err := Decrypt(sessionKey, data2, iv2)
			if err != nil || !bytes.Equal(pt, pt2) {
				t.Fatalf("round trip: %v", err)
			}
		}

		u, err := DecryptUserInfo(sessionKey, encryptedData, iv, officialAppID)
		if err != nil {
			if n := sentinelCount(err); n != 1 {
				t.Fatalf("DecryptUserInfo error %q wraps %d sentinels", err, n)
			}
			if u != nil {
				t.Fatal("UserInfo returned with an error")
			}
		} else if u.Watermark.AppID != officialAppID {
			t.Fatalf("accepted watermark appid %q", u.Watermark.AppID)
		}
	})
}

// FuzzUserInfoPlaintext reaches the JSON and watermark checks, which random
// ciphertexts almost never do: the plaintext is fuzzed and encrypted first.
func FuzzUserInfoPlaintext(f *testing.F) {
	f.Add([]byte(officialPlaintext))
	f.Add([]byte(`{"gender":"1","watermark":{"appid":"wx4f4bc4dec97d474b","timestamp":"1"}}`))
	f.Add([]byte(`{"watermark":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, plaintext []byte) {
		data, iv, err := Encrypt(canaryKey, plaintext)
		if err != nil {
			if sentinelCount(err) != 1 {
				t.Fatalf("Encrypt error %q", err)
			}
			return
		}
		u, err := DecryptUserInfo(canaryKey, data, iv, officialAppID)
		if err != nil {
			if n := sentinelCount(err); n != 1 {
				t.Fatalf("error %q wraps %d sentinels", err, n)
			}
			return
		}
		if u.Watermark.AppID != officialAppID {
			t.Fatalf("accepted watermark appid %q", u.Watermark.AppID)
		}
	})
}
