// Package checkpoint is pt2conv's format-neutral model of a checkpoint: the object tree
// (dicts, lists, plain values, tensors), tensors as views (size, stride, offset) into
// storages, and storages as lazy references to bytes that stay in the file.
//
// Codecs fill it: package pickle reads and writes torch's .pt files, other codecs their own
// formats. Rewrites and checks work on this model only and never see a file format.
package checkpoint
