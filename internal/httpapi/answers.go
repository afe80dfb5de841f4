package httpapi

import (
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// sessionAnswer is the contract's session shape.
type sessionAnswer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	OpenID       string `json:"openid"`
	UnionID      string `json:"unionid,omitempty"`
	// IDType says what openid is where a platform has several kinds of
	// id: Alipay's "open_id" or "user_id".
	IDType     string         `json:"id_type,omitempty"`
	AppID      string         `json:"appid"`
	HasProfile bool           `json:"has_profile"`
	Profile    *store.Profile `json:"profile"`
}

func newSessionAnswer(res *login.Result, now time.Time) sessionAnswer {
	return sessionAnswer{
		AccessToken:  res.AccessToken,
		TokenType:    "Bearer",
		ExpiresIn:    secondsUntil(res.AccessExpires, now),
		RefreshToken: res.RefreshToken,
		OpenID:       res.User.OpenID,
		UnionID:      res.User.UnionID,
		IDType:       res.User.IDType,
		AppID:        res.Session.AppID,
		HasProfile:   res.User.Profile != nil,
		Profile:      res.User.Profile,
	}
}

// secondsUntil is expires_in: whole seconds, rounded down, so the token
// lives at least as long as the answer says (exp is rounded up, so a token
// issued for 1s says 1).
func secondsUntil(t, now time.Time) int64 {
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return int64(d / time.Second)
}

// logResult writes the one line of an operation (login, refresh, logout,
// profile, phone): what it was for and how it ended. Never a token, a
// session_key or a phone number.
func (s *API) logResult(level zapcore.Level, op, appid, openid, result string, fields ...zap.Field) {
	ce := s.logger.Check(level, op)
	if ce == nil {
		return
	}
	base := make([]zap.Field, 0, 3+len(fields))
	if appid != "" {
		base = append(base, zap.String("appid", appid))
	}
	if openid != "" {
		base = append(base, zap.String("openid", openid))
	}
	ce.Write(append(append(base, zap.String("result", result)), fields...)...)
}

// fail answers a domain service's error for op and logs its one line; it
// returns the answer's error code, for the metrics. openid is "" when not
// known yet (a login); extra are fields of op's own, such as a step.
func (s *API) fail(w http.ResponseWriter, op, appid, openid string, err error, extra ...zap.Field) string {
	f := failureOf(err)
	if f.backoff {
		s.metrics.RateLimited.WithLabelValues(op, "backoff").Inc()
	}
	s.logResult(f.level, op, appid, openid, f.answer.Code, append(extra, f.fields...)...)
	writeError(w, f.answer)
	return f.answer.Code
}

// refresh trades a refresh token (posted, or a browser's cookie), and logs
// and counts the outcome, retries within the grace included.
func (s *API) refresh(r *http.Request, refreshToken string) (*login.Result, error) {
	res, err := s.logins.Refresh(r.Context(), refreshToken)
	if err != nil {
		f := failureOf(err)
		if errors.Is(err, login.ErrRevoked) {
			f.level = zapcore.WarnLevel
			f.fields = append(f.fields, zap.String("detail", "the session is revoked: logged out, or a spent refresh token was presented again after its grace and the session was ended"))
		}
		s.logResult(f.level, "refresh", "", "", f.answer.Code, f.fields...)
		s.metrics.Refreshes.WithLabelValues(f.answer.Code).Inc()
		return nil, err
	}
	result := "ok"
	if res.Retried {
		result = "retried" // within the grace: the same successor again
	}
	s.logResult(zapcore.InfoLevel, "refresh", res.Session.AppID, res.Session.OpenID, result)
	s.metrics.Refreshes.WithLabelValues(result).Inc()
	return res, nil
}

// countLogin counts one login attempt that named a configured app.
// Requests refused before that (a malformed body, an unknown appid) are
// not logins, and a client-chosen appid is never a label.
func (s *API) countLogin(appid, result string) {
	s.metrics.Logins.WithLabelValues(appid, result).Inc()
}
