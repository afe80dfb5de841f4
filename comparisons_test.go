package caddywxauth

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"strings"
	"testing"
)

// TestSecretComparisonsAreConstantTime guards the places where a value the
// client sends is compared with a secret the gateway holds: each must go
// through crypto/subtle, never ==, != or bytes.Equal, whose time depends
// on how many leading bytes match. Timing itself cannot be measured
// reliably in a test (least of all on a shared machine), so this reads the
// source: it fails if someone rewrites one of these comparisons. The
// behaviour of each (a wrong value is refused) is tested where the code
// lives; SECURITY.md lists the comparisons that are deliberately not
// constant-time and why.
func TestSecretComparisonsAreConstantTime(t *testing.T) {
	for _, site := range []struct {
		file, fn string
		// operands are the expressions that must only meet in
		// subtle.ConstantTimeCompare.
		operands []string
	}{
		// The refresh token's hash against the session's current one.
		{"internal/login/refresh.go", "Refresh", []string{"presented", "sess.RefreshHash"}},
		{"internal/login/refresh.go", "LogoutWithRefresh", []string{"presented", "sess.RefreshHash"}},
		// The web login's state against the cookie that binds it to the
		// browser.
		{"internal/weblogin/weblogin.go", "Finish", []string{"browserState", "state"}},
		// The legacy rawData signature, keyed with the session_key.
		{"internal/userdata/signature.go", "VerifySignature", []string{"got", "want"}},
	} {
		t.Run(site.file+":"+site.fn, func(t *testing.T) {
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, site.file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			var body *ast.BlockStmt
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == site.fn {
					body = fd.Body
				}
			}
			if body == nil {
				t.Fatalf("no func %s in %s: update this test", site.fn, site.file)
			}
			text := func(n ast.Node) string {
				var b strings.Builder
				_ = printer.Fprint(&b, fset, n)
				return b.String()
			}
			mentions := func(n ast.Node) bool {
				s := text(n)
				for _, op := range site.operands {
					if strings.Contains(s, op) {
						return true
					}
				}
				return false
			}
			constantTime := false
			ast.Inspect(body, func(n ast.Node) bool {
				switch e := n.(type) {
				case *ast.BinaryExpr:
					if (e.Op == token.EQL || e.Op == token.NEQ) && mentions(e.X) && mentions(e.Y) {
						t.Errorf("%s compares with %s: %s", site.fn, e.Op, text(e))
					}
				case *ast.CallExpr:
					call := text(e.Fun)
					switch {
					case call == "subtle.ConstantTimeCompare" && len(e.Args) == 2:
						all := text(e.Args[0]) + " " + text(e.Args[1])
						both := true
						for _, op := range site.operands {
							both = both && strings.Contains(all, op)
						}
						constantTime = constantTime || both
					case call == "bytes.Equal" || call == "strings.EqualFold" || call == "strings.Compare" || call == "bytes.Compare":
						if len(e.Args) == 2 && mentions(e.Args[0]) && mentions(e.Args[1]) {
							t.Errorf("%s compares with %s: %s", site.fn, call, text(e))
						}
					}
				}
				return true
			})
			if !constantTime {
				t.Errorf("%s no longer compares %v with subtle.ConstantTimeCompare", site.fn, site.operands)
			}
		})
	}
}
