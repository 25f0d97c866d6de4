//go:build tools

package tools
import (
 _ "github.com/BurntSushi/toml"
 _ "github.com/gliderlabs/ssh"
 _ "github.com/go-git/go-git/v5"
 _ "github.com/robfig/cron/v3"
 _ "modernc.org/sqlite"
 _ "golang.org/x/crypto/ssh"
)
