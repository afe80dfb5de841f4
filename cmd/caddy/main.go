// Command caddy is a full Caddy (the standard modules) with the wxauth
// plugin built in: `go build ./cmd/caddy` is the same binary xcaddy builds
// with `--with github.com/wxauth/caddy-wxauth`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/wxauth/caddy-wxauth"
)

func main() {
	caddycmd.Main()
}
