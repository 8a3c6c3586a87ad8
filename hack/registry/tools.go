//go:build tools

// Package tools pins the registry this folder builds: distribution v3, whose tag list
// paginates (`n`, `last`, `Link`), unlike Debian's docker-registry (distribution 2.8).
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
