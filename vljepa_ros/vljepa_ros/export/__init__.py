"""Export of checkpoints to ONNX: graph export, parity checks and the graph passes (torch and onnx)."""
