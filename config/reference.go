package config

import (
	"fmt"
	"strings"
)

// ReferenceMarkdown renders Keys() as the Markdown tables of
// docs/configuration.md (one table per top-level section).
func ReferenceMarkdown() string {
	var b strings.Builder
	section := ""
	for _, k := range Keys() {
		top, _, _ := strings.Cut(k.Path, ".")
		if top != section {
			section = top
			fmt.Fprintf(&b, "\n### `%s`\n\n", top)
			b.WriteString("| Key | Type | Default | Allowed | Meaning |\n|---|---|---|---|---|\n")
		}
		def := k.Default
		if def != "" {
			def = "`" + def + "`"
		}
		allowedVals := k.Allowed
		if allowedVals != "" {
			allowedVals = strings.ReplaceAll(allowedVals, "|", "\\|")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Path, k.Type, def, allowedVals, strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;").Replace(k.Doc))
	}
	return strings.TrimLeft(b.String(), "\n")
}
