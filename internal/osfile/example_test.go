package osfile_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pt2conv/pt2conv/internal/osfile"
)

// The sequence that makes an output appear whole or not at all.
func Example() {
	dir, _ := os.MkdirTemp("", "osfile-example")
	defer os.RemoveAll(dir)
	target := filepath.Join(dir, "model.pt")

	osfile.RemoveStaleTemps(dir, "model.pt")
	f, err := osfile.CreateTemp(dir, "model.pt")
	if err != nil {
		fmt.Println(err)
		return
	}
	f.WriteString("checkpoint bytes")
	if err := f.Sync(); err != nil { // durable before it gets the target's name
		fmt.Println(err)
		return
	}
	f.Close()
	if err := osfile.Publish(f.Name(), target, false); err != nil {
		os.Remove(f.Name())
		fmt.Println(err)
		return
	}
	if err := osfile.SyncDir(dir); err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(target)
	fmt.Println(string(b))
	// Output: checkpoint bytes
}
