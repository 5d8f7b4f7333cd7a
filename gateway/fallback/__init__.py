"""The ladder's last serving rungs: the in-process ONNX fallback model and the static default."""
