// Package rewrite turns nn.Linear weights of a checkpoint into nn.Conv2d weights and back.
//
// It owns the pure part of the conversion: parsing layer specs, deciding which tensors change
// and to which sizes and strides (NewPlan), and producing the new object tree (Apply). The
// change is a view: a weight of sizes (out, in) and strides (s0, s1) becomes sizes
// (out, C, H, W) and strides (s0, H·W·s1, W·s1, s1) over the same storage and offset, so no
// byte of tensor data is read or moved. Nothing here touches files.
package rewrite
