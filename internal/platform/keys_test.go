package platform

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

func TestParseKeys(t *testing.T) {
	key := fakeplatform.SandboxKeys().App
	pkcs1 := x509.MarshalPKCS1PrivateKey(key)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	pkix, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPKCS1 := x509.MarshalPKCS1PublicKey(&key.PublicKey)
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	// Bare base64 as Alipay's key tool writes it, wrapped or not.
	bare := base64.StdEncoding.EncodeToString(pkcs8)
	wrapped := bare[:64] + "\n" + bare[64:] + "\n"

	for name, s := range map[string]string{
		"PKCS#1 PEM": pemOf("RSA PRIVATE KEY", pkcs1), "PKCS#8 PEM": pemOf("PRIVATE KEY", pkcs8),
		"bare PKCS#8": bare, "wrapped PKCS#8": wrapped, "bare PKCS#1": base64.StdEncoding.EncodeToString(pkcs1),
	} {
		got, err := ParsePrivateKey(s)
		if err != nil || !got.Equal(key) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, s := range map[string]string{
		"PKIX PEM": pemOf("PUBLIC KEY", pkix), "PKCS#1 PEM": pemOf("RSA PUBLIC KEY", pubPKCS1),
		"bare PKIX": base64.StdEncoding.EncodeToString(pkix),
	} {
		got, err := ParsePublicKey(s)
		if err != nil || !got.Equal(&key.PublicKey) {
			t.Errorf("public %s: %v", name, err)
		}
	}

	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	for name, s := range map[string]string{
		"empty": "", "garbage": "not a key at all!", "public key as private": pemOf("PUBLIC KEY", pkix),
		"broken PEM": "-----BEGIN PRIVATE KEY-----\nAAAA", "EC key": pemOf("PRIVATE KEY", ecDER),
		"1024 bits": pemOf("PRIVATE KEY", smallDER), "base64 of nothing useful": base64.StdEncoding.EncodeToString([]byte("hello")),
	} {
		_, err := ParsePrivateKey(s)
		if err == nil {
			t.Errorf("%s: parsed", name)
			continue
		}
		// The error never quotes the key.
		if s != "" && strings.Contains(err.Error(), strings.TrimSpace(s)[:min(12, len(strings.TrimSpace(s)))]) && !strings.HasPrefix(s, "-----") {
			t.Errorf("%s: error %q quotes the input", name, err)
		}
		if strings.Contains(err.Error(), bare[:20]) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(ecDER)[:20]) {
			t.Errorf("%s: error %q shows key material", name, err)
		}
	}
	if _, err := ParsePublicKey(pemOf("PRIVATE KEY", pkcs8)); err == nil {
		t.Error("a private key parsed as a public one")
	}
}
