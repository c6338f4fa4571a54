"""Vision runtime: quality scores, privacy, detector on ONNX Runtime, camera model."""
