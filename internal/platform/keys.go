package platform

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MinRSABits is the smallest RSA key accepted: Alipay's RSA2 keys and
// Douyin's application keys are 2048 bits.
const MinRSABits = 2048

// ParsePrivateKey reads an app's RSA private key: PEM ("RSA PRIVATE KEY",
// PKCS#1, or "PRIVATE KEY", PKCS#8), or the bare base64 of either DER form,
// as Alipay's key tool writes it. Its errors say what is wrong with the key
// without ever quoting it.
func ParsePrivateKey(s string) (*rsa.PrivateKey, error) {
	der, err := keyDER(s, "PRIVATE KEY", "RSA PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("it is not an RSA key (RSA2 keys are RSA)")
		}
		key = rk
	} else {
		return nil, errors.New("it is not an RSA private key in PKCS#1 or PKCS#8 form")
	}
	if bits := key.N.BitLen(); bits < MinRSABits {
		return nil, fmt.Errorf("it is %d bits; the platform's keys are at least %d", bits, MinRSABits)
	}
	return key, nil
}

// ParsePublicKey reads a platform's RSA public key (Alipay's): PEM
// ("PUBLIC KEY", PKIX, or "RSA PUBLIC KEY", PKCS#1), or the bare base64 of
// either DER form, as Alipay's console shows it.
func ParsePublicKey(s string) (*rsa.PublicKey, error) {
	der, err := keyDER(s, "PUBLIC KEY", "RSA PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	var key *rsa.PublicKey
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("it is not an RSA key (RSA2 keys are RSA)")
		}
		key = rk
	} else if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		key = k
	} else {
		return nil, errors.New("it is not an RSA public key in PKIX or PKCS#1 form")
	}
	if bits := key.N.BitLen(); bits < MinRSABits {
		return nil, fmt.Errorf("it is %d bits; the platform's keys are at least %d", bits, MinRSABits)
	}
	return key, nil
}

// keyDER is the DER of a PEM block of one of the types, or of bare base64.
func keyDER(s string, types ...string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("it is empty")
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		if block == nil {
			return nil, errors.New("it is not valid PEM")
		}
		for _, t := range types {
			if block.Type == t {
				return block.Bytes, nil
			}
		}
		return nil, fmt.Errorf("it is a PEM %q block; want %s", block.Type, strings.Join(types, " or "))
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, errors.New("it is neither PEM nor base64")
	}
	return der, nil
}
