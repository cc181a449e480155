"""Shipped saliency models (ONNX) and their model cards."""
