package fakeplatform

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"sync"
)

// Keys are the sandbox's RSA key pairs. They are made once per process
// (never written anywhere), so the plugin's sandbox mode and the fake it
// talks to share them without configuration, and nothing secret sits in
// the source.
type Keys struct {
	// App stands for every app's own key pair: its public half is what the
	// developer uploads to Alipay's or Douyin's console. The fake checks
	// Alipay requests' signatures and encrypts Douyin phone numbers with
	// it; the plugin signs and decrypts with the private half.
	App *rsa.PrivateKey
	// Alipay is Alipay's key pair: the fake signs its answers with it; the
	// plugin checks them with its public half (the app's
	// alipay_public_key).
	Alipay *rsa.PrivateKey
}

var sandboxKeys = sync.OnceValue(func() Keys {
	return Keys{App: newKey(), Alipay: newKey()}
})

// SandboxKeys returns the process's sandbox keys, making them on first use
// (a fraction of a second).
func SandboxKeys() Keys {
	return sandboxKeys()
}

// NewKey makes a fresh RSA key of the platforms' size (2048 bits), as a
// test's wrong key.
func NewKey() *rsa.PrivateKey {
	return newKey()
}

func newKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("fakeplatform: cannot make an RSA key: " + err.Error()) // only when the system's randomness fails
	}
	return k
}

// PrivateKeyPEM is key as a PKCS#8 PEM block, as an operator's key file
// holds it.
func PrivateKeyPEM(key *rsa.PrivateKey) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(key) // an RSA key always marshals
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// PublicKeyPEM is key's public half as a PKIX PEM block, as Alipay's
// console gives it.
func PublicKeyPEM(key *rsa.PrivateKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey) // an RSA key always marshals
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// appPublicKey is the public key the fake holds for appid's own key pair:
// the one SetAppPublicKey registered, else the sandbox's.
func (e *Engine) appPublicKey(appid string) *rsa.PublicKey {
	e.mu.Lock()
	pub := e.appKeys[appid]
	e.mu.Unlock()
	if pub == nil {
		pub = &SandboxKeys().App.PublicKey
	}
	return pub
}

// SetAppPublicKey registers the public key appid uploaded to the
// platform's console (Alipay, Douyin), in place of the sandbox's: requests
// are then checked, and phone numbers encrypted, with it.
func (e *Engine) SetAppPublicKey(appid string, pub *rsa.PublicKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.appKeys[appid] = pub
}
