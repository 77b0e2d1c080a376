"""The engine: models, attention features and the AD loops (nothing here prints).

Importing it silences the optional quantization backends' import-time log lines (torchao's CUDA
extensions on a CPU…) before any engine module imports diffusers: a user can do nothing about them,
and a one-line error must stay one line.
"""

from adcli.engine.quiet import quiet_quantization_backends

quiet_quantization_backends()
