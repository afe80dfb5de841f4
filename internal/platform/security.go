package platform

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/textproto"
)

// errcodeRisky is the content-security errcode for risky content. It is an
// answer, not a failure.
const errcodeRisky = 87014

// The suggestions of a Verdict.
const (
	SuggestPass   = "pass"
	SuggestReview = "review"
	SuggestRisky  = "risky"
)

// Verdict is a content-security answer.
type Verdict struct {
	// Suggest is "pass", "review" or "risky", as WeChat's msgSecCheck v2
	// answers it; "risky" for errcode 87014 (images, QQ); "pass" otherwise.
	Suggest string
	// Label is the platform's label for the verdict (e.g. 20001; WeChat says
	// 100 for normal content), 0 when it sent none.
	Label int
}

// Risky reports whether the platform says the content must be rejected.
// "review" is not risky: the platform is unsure, and what to do about it is
// the caller's policy.
func (v Verdict) Risky() bool {
	return v.Suggest == SuggestRisky
}

// textCheckBody is the JSON body of WeChat's /wxa/msg_sec_check (version 2).
type textCheckBody struct {
	Version int    `json:"version"`
	OpenID  string `json:"openid"`
	Scene   int    `json:"scene"`
	Content string `json:"content"`
}

// qqTextCheckBody is the JSON body of QQ's MsgSecCheck.
type qqTextCheckBody struct {
	AppID   string `json:"appid"`
	Content string `json:"content"`
}

// checkAnswer is the answer of every content check. Only WeChat's text
// check has a result.
type checkAnswer struct {
	Errcode int `json:"errcode"`
	Result  *struct {
		Suggest string `json:"suggest"`
		Label   int    `json:"label"`
	} `json:"result"`
}

// sceneProfile is msgSecCheck's scene for profile data (nicknames).
const sceneProfile = 1

// textCheckFailures are the text check's own errcodes.
var textCheckFailures = map[int]failure{
	40003: {Unavailable, "the platform does not know this user's openid (errcode 40003); log in again and retry"},
	61010: {Unavailable, "the platform checks text only for users who opened the mini program in the last 2 hours " +
		"(errcode 61010); open the mini program, log in again and retry"},
}

// CheckText asks the platform whether content (a nickname) may be shown.
// openid is the user who wrote it: WeChat requires that they used the app in
// the last 2 hours; QQ does not use it. Empty content passes without a call:
// there is nothing to check.
func (s *Service) CheckText(ctx context.Context, app App, openid, content string) (Verdict, error) {
	if content == "" {
		return Verdict{Suggest: SuggestPass}, nil
	}
	switch app.Kind {
	case Douyin:
		return s.douyinCheckText(ctx, app, content)
	case Alipay:
		return s.client().alipayCheckText(ctx, app, content)
	case Baidu:
		return s.baiduCheckText(ctx, app, content)
	}
	isQQ := app.Kind == QQ
	req := request{failures: textCheckFailures, answers: []int{errcodeRisky}}
	if isQQ {
		req.api, req.path = "MsgSecCheck", "/api/json/security/MsgSecCheck"
		req = jsonRequest(req, qqTextCheckBody{AppID: app.AppID, Content: content})
	} else {
		req.api, req.path = "msg_sec_check", "/wxa/msg_sec_check"
		req = jsonRequest(req, textCheckBody{Version: 2, OpenID: openid, Scene: sceneProfile, Content: content})
	}
	var answer checkAnswer
	if err := s.call(ctx, app, req, &answer); err != nil {
		return Verdict{}, err
	}

	if answer.Errcode == errcodeRisky {
		v := Verdict{Suggest: SuggestRisky}
		if answer.Result != nil {
			v.Label = answer.Result.Label
		}
		return v, nil
	}
	if isQQ {
		return Verdict{Suggest: SuggestPass}, nil
	}
	// Version 2 always says what it thinks; a success without a known
	// suggestion cannot be taken as a pass.
	if answer.Result == nil {
		return Verdict{}, unavailable(req.api, "the platform's text check answered without a result; try again later")
	}
	switch answer.Result.Suggest {
	case SuggestPass, SuggestReview, SuggestRisky:
		return Verdict{Suggest: answer.Result.Suggest, Label: answer.Result.Label}, nil
	}
	return Verdict{}, unavailable(req.api, "the platform's text check answered with an unknown suggestion; try again later")
}

// CheckImage asks the platform whether image (an avatar, JPEG, PNG, WebP or
// GIF) may be shown. It is sent as the multipart file "media" (Douyin: as
// base64 in JSON). A platform without an image check (Kind.ChecksImages)
// gets Unsupported, without a call.
func (s *Service) CheckImage(ctx context.Context, app App, image []byte) (Verdict, error) {
	if !app.Kind.ChecksImages() {
		return Verdict{}, &Error{Code: Unsupported, API: "image_check",
			Message: app.Kind.Name() + " has no image content check for mini programs"}
	}
	if app.Kind == Douyin && len(image) > 0 {
		return s.douyinCheckImage(ctx, app, image)
	}
	req := request{answers: []int{errcodeRisky}}
	var fields [][2]string
	if app.Kind == QQ {
		req.api, req.path = "ImgSecCheck", "/api/json/security/ImgSecCheck"
		fields = [][2]string{{"appid", app.AppID}}
	} else {
		req.api, req.path = "img_sec_check", "/wxa/img_sec_check"
	}
	if len(image) == 0 {
		return Verdict{}, &Error{Code: Unsupported, API: req.api, Message: "the image is empty; upload the image file again"}
	}
	req = multipartRequest(req, fields, "media", image)

	var answer checkAnswer
	if err := s.call(ctx, app, req, &answer); err != nil {
		return Verdict{}, err
	}
	if answer.Errcode == errcodeRisky {
		return Verdict{Suggest: SuggestRisky}, nil
	}
	return Verdict{Suggest: SuggestPass}, nil
}

// multipartRequest returns req as a POST of a multipart/form-data body with
// fields and the file in field fileField. The file's content type is
// sniffed; its name is "avatar" with the matching extension.
func multipartRequest(req request, fields [][2]string, fileField string, file []byte) request {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	// Writes to a bytes.Buffer cannot fail, nor can these fixed headers.
	for _, f := range fields {
		w.WriteField(f[0], f[1])
	}
	contentType := http.DetectContentType(file)
	header := make(textproto.MIMEHeader)
	header.Set("Content-Disposition", `form-data; name="`+fileField+`"; filename="avatar`+imageExtension(contentType)+`"`)
	header.Set("Content-Type", contentType)
	part, _ := w.CreatePart(header)
	part.Write(file)
	w.Close()

	req.method = http.MethodPost
	req.body = body.Bytes()
	req.contentType = w.FormDataContentType()
	return req
}

// imageExtension is the file name extension for a sniffed image type; some
// platform front ends judge a file by its name.
func imageExtension(contentType string) string {
	switch contentType {
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "image/webp":
		return ".webp"
	case "image/gif":
		return ".gif"
	}
	return ""
}
