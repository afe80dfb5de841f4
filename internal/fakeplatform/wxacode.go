package fakeplatform

import (
	"net/http"
	"slices"

	"github.com/skip2/go-qrcode"
)

// wxaCodePath is getwxacodeunlimit, the unlimited mini-program code.
const wxaCodePath = "/wxa/getwxacodeunlimit"

// PageMissing is Options.Scripted's page that does not exist: a code for
// it gets errcode 41030, as an unpublished page does.
const PageMissing = "pages/missing"

// wxaCodeSize is the side of the sandbox's code in pixels: the platform's
// default width, 430.
const wxaCodeSize = 430

// WxaCode is one getwxacodeunlimit request as a stateful engine recorded
// it.
type WxaCode struct {
	Scene      string `json:"scene"`
	Page       string `json:"page"`
	EnvVersion string `json:"env_version"`
	CheckPath  *bool  `json:"check_path"`
}

// CodeContent is what the sandbox's mini-program code for scene says
// when scanned: the page it stands for and its scene, as a URL. Where the
// real platform draws its round code, the sandbox draws a plain QR code
// of this text, which any phone or test can read.
func CodeContent(page, scene string) string {
	return "wxauth-sandbox://miniprogram/" + page + "?scene=" + scene
}

// CodePNG is the sandbox's mini-program code for (page, scene): a PNG of
// CodeContent's QR code, 430 pixels wide, the same bytes every time.
func CodePNG(page, scene string) ([]byte, error) {
	return qrcode.Encode(CodeContent(page, scene), qrcode.Medium, wxaCodeSize)
}

// wxaCode serves POST /wxa/getwxacodeunlimit: the image on success (with
// HTTP 200 and Content-Type image/png), JSON errcodes otherwise.
func (e *Engine) wxaCode(w http.ResponseWriter, r *http.Request) {
	if _, ok := e.checkToken(w, r); !ok {
		return
	}
	var body WxaCode
	if !readJSON(w, r, &body) {
		return
	}
	switch {
	case body.Scene == "" || len(body.Scene) > 32:
		writeFailure(w, failure{40169, "invalid length for scene, or the data is not json string"})
		return
	case body.EnvVersion != "" && body.EnvVersion != "release" && body.EnvVersion != "trial" && body.EnvVersion != "develop":
		writeFailure(w, failure{40097, "invalid args"})
		return
	case e.opts.Scripted && body.Page == PageMissing:
		writeFailure(w, failure{41030, "invalid page"})
		return
	}
	e.record(func(rec *recording) { rec.wxaCodes = append(rec.wxaCodes, body) })
	png, err := CodePNG(body.Page, body.Scene)
	if err != nil {
		writeFailure(w, failure{40129, "invalid scene"})
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.WriteHeader(http.StatusOK)
	w.Write(png)
}

// WxaCodes is every mini-program code a stateful engine made, in order.
func (e *Engine) WxaCodes() []WxaCode {
	return recorded(e, func(rec *recording) []WxaCode { return slices.Clone(rec.wxaCodes) })
}
