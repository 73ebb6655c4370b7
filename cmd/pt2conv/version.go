package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by release builds: -ldflags "-X main.version=v1.2.0 -X main.commit=... -X main.date=...".
// A plain `go build` or `go install` leaves them empty and buildVersion asks the binary's
// build information instead.
var (
	version string
	commit  string
	date    string
)

// buildVersion is what --version prints: the version, the commit and when it was made, and
// the Go toolchain and platform, e.g. "v1.2.0 (commit 1a2b3c4d5e6f, 2026-11-27T10:00:00Z,
// go1.26.8 darwin/arm64)". Without ldflags the version is the module's (set by go install
// module@version, "(devel)" or a pseudo-version from a checkout) and the commit and time are
// those go build stamped from the checkout, with "+dirty" for uncommitted changes.
func buildVersion(info *debug.BuildInfo, ok bool) string {
	v, c, d, dirty := version, commit, date, false
	if ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.time":
				if d == "" {
					d = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true" && commit == ""
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if dirty {
		c += "+dirty"
	}
	if d == "" {
		d = "unknown date"
	}
	return fmt.Sprintf("%s (commit %s, %s, %s %s/%s)", v, c, d, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func versionString() string {
	info, ok := debug.ReadBuildInfo()
	return buildVersion(info, ok)
}
