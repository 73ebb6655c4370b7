// Package pickle is pt2conv's codec for torch's .pt files: it reads PyTorch checkpoints into
// package checkpoint's model and writes that model in the format torch.save produces.
//
// Open reads torch's zip container (torch >= 1.6) and the legacy stream format, with
// pickle protocols 1 to 5, and everything torch's weights_only loader allows in them
// (AllowedGlobals): tensors of every dtype, including torch 2's float8 and uint16/32/64 over
// untyped storages (_rebuild_tensor_v3), parameters, quantized and sparse tensors, tensors
// with Python attributes (_rebuild_from_type_v2), meta and nested tensors, tensors in torch
// 0.3's form, and plain Python values. The few names on torch's list that no file torch
// writes on a CPU can hold (wrapper subclasses, device tensors) fail with ErrUnsupported,
// naming what they build. Only data.pkl and the container's directory are read; tensor
// bytes stay in the file, referenced by Storage values, until Save copies them or a caller
// decodes them through checkpoint.Checkpoint.StorageReader. The pickle runs through a machine
// (machine.go) that records, never executes: a global outside the allowlist of torch's
// weights_only loader is refused with a *GlobalError, and every length the file declares is
// checked against the bytes it holds before anything is allocated (see Limits).
//
// Save writes protocol 2 and the zip layout torch writes (stored records, 64-byte aligned
// data), encoding data.pkl anew from the object tree, each tensor through the rebuild function
// torch would use for it and copying each storage's bytes
// unchanged, file to file, so that memory use does not grow with the checkpoint's size.
// Output appears atomically: a temporary file beside the target is synced and renamed.
package pickle
