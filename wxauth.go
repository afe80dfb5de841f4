// Package caddywxauth puts WeChat and QQ login in front of any web backend,
// as a Caddy v2 plugin. Importing it registers the http.handlers.wxauth
// module and the `wxauth` Caddyfile directive; this is the package xcaddy
// imports for `xcaddy build --with github.com/wxauth/caddy-wxauth`.
//
// The module itself lives in ./caddymodule.
package caddywxauth

import (
	_ "github.com/wxauth/caddy-wxauth/caddymodule"
)
