// Package userdata decrypts and verifies the "encrypted user data" that
// WeChat and QQ mini-programs hand to the client (wx.getUserInfo and its QQ
// equivalent) and that the client forwards to the server.
//
// The platform encrypts a JSON object with AES-128-CBC and PKCS#7 padding,
// keyed by the user's current session_key from code2Session, and signs the
// accompanying rawData with sha1(rawData + session_key). wx.getUserInfo no
// longer returns real profiles on current WeChat clients, but QQ and old
// PC/macOS clients still do, so wxauth keeps this path.
//
// The package is deliberately strict about structure and lenient about
// transport damage: base64 that went through form decoding (' ' instead of
// '+'), lost its '=' padding, uses the URL-safe alphabet or was wrapped with
// newlines still decodes, but nothing that decodes to the wrong length, and
// no ciphertext that is not whole AES blocks, ever reaches the cipher.
//
// Every error wraps exactly one of ErrMalformed, ErrDecrypt, ErrWatermark or
// ErrSignature, so a handler can map it to an answer with errors.Is. No error
// text ever includes the session key, the plaintext or any input string, so
// errors can be logged and shown as they are.
package userdata
