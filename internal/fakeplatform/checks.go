package fakeplatform

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
)

// The values of the content checks.
const (
	// RiskyMarker makes content risky: text that contains it in any case, or
	// an image whose bytes do.
	RiskyMarker = "risky"
	// RiskyLabel is the label of risky text (WeChat's label for politics).
	RiskyLabel = 20001
	// PassLabel is the label of text that passes (WeChat's "normal").
	PassLabel = 100
	// TextReview in a text makes WeChat's text check answer suggest
	// "review" with label ReviewLabel (Options.Scripted; unless the text
	// is also risky).
	TextReview  = "review"
	ReviewLabel = 21000
)

// TextCheck is one text check a stateful engine answered, its fields as
// received.
type TextCheck struct {
	AppID   string // the app the access_token was issued to, or QQ's appid field
	OpenID  string // "" for QQ
	Scene   int    // 0 for QQ
	Version int    // 0 for QQ
	Content string
}

// textBody is the body of a text check, WeChat's fields and QQ's.
type textBody struct {
	AppID   string `json:"appid"` // QQ's
	OpenID  string `json:"openid"`
	Scene   int    `json:"scene"`
	Version int    `json:"version"`
	Content string `json:"content"`
}

// readTextCheck checks the token and reads and records a text check; false
// when it answered.
func (e *Engine) readTextCheck(w http.ResponseWriter, r *http.Request) (textBody, bool) {
	appid, ok := e.checkToken(w, r)
	var body textBody
	if !ok || !readJSON(w, r, &body) {
		return body, false
	}
	if body.AppID != "" {
		appid = body.AppID
	}
	e.record(func(rec *recording) {
		rec.textChecks = append(rec.textChecks, TextCheck{AppID: appid, OpenID: body.OpenID, Scene: body.Scene, Version: body.Version, Content: body.Content})
	})
	return body, true
}

// textCheck serves WeChat's POST /wxa/msg_sec_check (version 2).
func (e *Engine) textCheck(w http.ResponseWriter, r *http.Request) {
	body, ok := e.readTextCheck(w, r)
	switch {
	case !ok:
		return
	case body.Version != 2:
		// Version 1 answers without a result; catching it here catches
		// client bugs.
		writeFailure(w, failure{errcodeDataFormat, "data format error: the sandbox implements version 2"})
		return
	case body.OpenID == "":
		writeFailure(w, failBadOpenID)
		return
	}
	suggest, label := "pass", PassLabel
	switch {
	case isRiskyText(body.Content):
		suggest, label = "risky", RiskyLabel
	case e.opts.Scripted && strings.Contains(strings.ToLower(body.Content), TextReview):
		suggest, label = "review", ReviewLabel
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"errcode":  0,
		"errmsg":   "ok",
		"result":   map[string]any{"suggest": suggest, "label": label},
		"trace_id": "sandbox",
	})
}

// qqTextCheck serves QQ's POST /api/json/security/MsgSecCheck.
func (e *Engine) qqTextCheck(w http.ResponseWriter, r *http.Request) {
	body, ok := e.readTextCheck(w, r)
	switch {
	case !ok:
	case body.AppID == "":
		writeFailure(w, failInvalidAppID)
	case isRiskyText(body.Content):
		writeFailure(w, failRisky)
	default:
		writeFailure(w, passed)
	}
}

// imageCheck serves WeChat's POST /wxa/img_sec_check and QQ's
// POST /api/json/security/ImgSecCheck, which differ only in QQ's extra
// appid field.
func (e *Engine) imageCheck(w http.ResponseWriter, r *http.Request) {
	if _, ok := e.checkToken(w, r); !ok {
		return
	}
	media, ok := readMedia(r)
	if ok {
		e.record(func(rec *recording) { rec.imageChecks = append(rec.imageChecks, media) })
	}
	switch {
	case !ok:
		writeFailure(w, failure{41005, "media data missing"})
	case isRiskyImage(media):
		writeFailure(w, failRisky)
	default:
		writeFailure(w, passed)
	}
}

// isRiskyText reports whether text is risky: it contains RiskyMarker in any
// case.
func isRiskyText(text string) bool {
	return strings.Contains(strings.ToLower(text), RiskyMarker)
}

// isRiskyImage reports whether an image is risky: its bytes contain
// RiskyMarker in any (ASCII) case.
func isRiskyImage(image []byte) bool {
	return bytes.Contains(bytes.ToLower(image), []byte(RiskyMarker))
}

// readMedia returns the bytes of the multipart file "media" in r (the image
// of a content check), and false when there is none (or the body is not
// multipart, or too large). It reads r's body.
func readMedia(r *http.Request) ([]byte, bool) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, false
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, false
		}
		if part.FormName() != "media" || part.FileName() == "" {
			continue
		}
		media, err := io.ReadAll(io.LimitReader(part, maxBody+1))
		if err != nil || len(media) > maxBody {
			return nil, false
		}
		return media, true
	}
}

// TextChecks is every text check a stateful engine answered (those refused
// for their token are not), in order.
func (e *Engine) TextChecks() []TextCheck {
	return recorded(e, func(rec *recording) []TextCheck { return slices.Clone(rec.textChecks) })
}

// ImageChecks is the media bytes of every image check a stateful engine
// answered (those refused for their token are not), in order.
func (e *Engine) ImageChecks() [][]byte {
	return recorded(e, func(rec *recording) [][]byte {
		checks := make([][]byte, len(rec.imageChecks))
		for i, c := range rec.imageChecks {
			checks[i] = slices.Clone(c)
		}
		return checks
	})
}
