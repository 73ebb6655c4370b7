// Package rewrite turns nn.Linear weights of a checkpoint into nn.Conv2d weights and back.
//
// It owns the pure part of the conversion: parsing layer specs, deciding which tensors change
// and to which sizes and strides (NewPlan), and producing the new object tree (Apply). The
// change is a view: a weight of sizes (out, in) and strides (s0, s1) becomes sizes
// (out, C, H, W) and strides (s0, H·W·s1, W·s1, s1) over the same storage and offset, so no
// byte of tensor data is read or moved. Nothing here touches files.
//
// auto and the warnings about hand-given splits read the checkpoint's evidence about a
// layer's input (Evidence): the nearest conv or norm layer before it, or a Linear that can
// feed it. A state_dict holds no graph, so this is inference from key order, and H and W are
// never in it.
package rewrite
