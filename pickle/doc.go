// Package pickle is pt2conv's codec for torch's .pt files: it reads PyTorch checkpoints into
// package checkpoint's model and writes that model in the format torch.save produces.
//
// Open reads torch's zip container (torch >= 1.6) and the legacy stream format, with
// pickle protocols 2 to 5. Only data.pkl and the container's directory are read; tensor
// bytes stay in the file, referenced by Storage values, until Save copies them or a caller
// decodes them through checkpoint.Checkpoint.StorageReader. The pickle runs through gopickle's
// machine with hooks that record, never execute: a global outside the allowlist of torch's
// weights_only loader is refused with a *GlobalError, and every length the file declares is
// checked against the bytes it holds before anything is allocated (see Limits).
//
// Save writes protocol 2 and the zip layout torch writes (stored records, 64-byte aligned
// data), encoding data.pkl anew from the object tree and copying each storage's bytes
// unchanged, file to file, so that memory use does not grow with the checkpoint's size.
// Output appears atomically: a temporary file beside the target is synced and renamed.
package pickle
