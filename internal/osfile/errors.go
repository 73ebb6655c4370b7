package osfile

import "errors"

// ErrInUse: Publish could not replace a file because another program holds it open
// without sharing delete access, or it is read-only. Only windows refuses so; elsewhere a
// rename replaces an open file, whose readers go on reading the old content.
var ErrInUse = errors.New("the file is open in another program or read-only; close it and retry")
