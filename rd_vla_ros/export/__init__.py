"""Deployment: ONNX export of the policy and an onnxruntime runner with the same surface."""
