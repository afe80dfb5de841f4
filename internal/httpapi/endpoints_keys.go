package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// jwks serves the public key of the access tokens, for services that
// verify them themselves (a WebSocket server, a job queue). With a shared
// secret (signing_key) there is nothing to publish.
func (s *API) jwks(w http.ResponseWriter, r *http.Request) {
	body, ok := s.codec.JWKS()
	if !ok {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "invalid_request",
			Message: "this gateway signs its tokens with signing_key (HS256), a shared secret that is never published; give the verifying service the same secret, or remove signing_key to sign with an Ed25519 key whose public half is served here"})
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
	hdr := w.Header()
	hdr.Set("Content-Type", "application/jwk-set+json")
	// The key changes only when the operator replaces it in storage:
	// verifiers may keep it for an hour, then revalidate.
	hdr.Set("Cache-Control", "public, max-age=3600")
	hdr.Set("ETag", etag)
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
