"""Everything about a TFLite model as bytes, in one place each: the artifact, the schema reader, the checks
before any C++ runs, and tensor quantization.

* :mod:`~pytest_tinyml.tflite.artifact`: ``TFLiteArtifact`` (bytes plus where they came from),
  ``current_versions``.
* :mod:`~pytest_tinyml.tflite.schema`: the one flatbuffer reader (header, model, tensors, operators, I/O).
* :mod:`~pytest_tinyml.tflite.checks`: structural and tensor checks.
* :mod:`~pytest_tinyml.tflite.quant`: ``TensorQuant``, quantize / dequantize as TFLite does.

Importing this package imports nothing heavy; numpy and the generated schema load when first used.
"""
