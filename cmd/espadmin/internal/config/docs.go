package config

import (
	"fmt"
	"strings"
)

// Markers delimit the generated table in docs/configuration.md.
const (
	DocsBeginMarker = "<!-- BEGIN GENERATED SETTINGS (go test ./cmd/espadmin/internal/config -update) -->"
	DocsEndMarker   = "<!-- END GENERATED SETTINGS -->"
)

// MarkdownTable renders the settings table for docs/configuration.md.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| File key | Flag | Environment | Default | Secret | Description |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, s := range settings {
		flagCol := "—"
		envCol := "`" + s.env + "`"
		keyCol := "`" + s.key + "`"
		if s.flag != "" {
			flagCol = "`--" + s.flag + "`"
		}
		secret := "no"
		if s.secret {
			secret = "yes"
			flagCol = "`--" + s.fileFlag() + "`"
			envCol += "<br>`" + s.fileEnv() + "`"
			keyCol += "<br>`" + s.fileKey() + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", keyCol, flagCol, envCol, s.defaultText(), secret, s.help)
	}
	return b.String()
}

// ReplaceGenerated returns doc with the text between the markers replaced by the current
// table, or an error when the markers are missing.
func ReplaceGenerated(doc string) (string, error) {
	begin := strings.Index(doc, DocsBeginMarker)
	end := strings.Index(doc, DocsEndMarker)
	if begin < 0 || end < begin {
		return "", fmt.Errorf("markers %q and %q not found", DocsBeginMarker, DocsEndMarker)
	}
	return doc[:begin+len(DocsBeginMarker)] + "\n" + MarkdownTable() + doc[end:], nil
}
