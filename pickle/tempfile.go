package pickle

import (
	"fmt"
	"os"
)

// tempError names the target, not the temporary file, when the temporary cannot be made.
func tempError(path string, err error) error {
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	return fmt.Errorf("%s: cannot create the output: %w", path, err)
}
