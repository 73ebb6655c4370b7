package main

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	stamped := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/pt2conv/pt2conv", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-01T12:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	platform := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	tests := []struct {
		name                  string
		version, commit, date string // ldflags
		info                  *debug.BuildInfo
		want                  string
	}{
		{name: "ldflags win", version: "v1.0.0", commit: "abcdef1234567890", date: "2026-11-27T10:00:00Z",
			info: stamped, want: "v1.0.0 (commit abcdef123456, 2026-11-27T10:00:00Z, " + platform},
		{name: "build info", info: stamped,
			want: "v0.3.0 (commit 0123456789ab+dirty, 2026-11-01T12:00:00Z, " + platform},
		{name: "checkout without vcs", info: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			want: "dev (commit unknown, unknown date, " + platform},
		{name: "no build info", want: "dev (commit unknown, unknown date, " + platform},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
			version, commit, date = tt.version, tt.commit, tt.date
			if got := buildVersion(tt.info, tt.info != nil); got != tt.want {
				t.Errorf("buildVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	got := stdout.String()
	if !strings.HasPrefix(got, "pt2conv ") || !strings.HasSuffix(got, runtime.GOOS+"/"+runtime.GOARCH+")\n") {
		t.Errorf("--version printed %q", got)
	}
}
