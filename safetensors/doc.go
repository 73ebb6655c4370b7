// Package safetensors reads and writes Hugging Face's .safetensors files as checkpoints of
// package checkpoint.
//
// A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON that map each
// tensor's name to its dtype, shape and byte span in the data region, an optional
// "__metadata__" map of strings, and then the data region. Open reads and validates the
// header only, by the reference implementation's rules, before it allocates anything for
// the tensors: the header is at most 100,000,000 bytes and lies within the file, it is a
// JSON object without duplicate keys, every dtype is known, every shape's element count
// times the item size equals its span without overflow, and the spans, sorted, cover the
// data region exactly (no holes, no overlaps). The tensor bytes stay in the file.
//
// Write and Save emit the header padded with spaces to a multiple of 8, as the reference
// writer does, and copy tensor bytes raw. A tensor that is a non-contiguous or offset view
// of its storage is gathered in tiles of bounded size, so memory does not grow with the
// tensor. Adjacent raw spans are copied as one block, so a file whose header alone changed
// (a Linear weight viewed as a 1×1 convolution) has its data region copied in one call.
//
// github.com/nlpodyssey/safetensors was considered: it deserializes a []byte holding the
// whole file and does not refuse duplicate keys, so it neither streams nor validates like
// the reference; the codec here is small enough to own.
package safetensors
