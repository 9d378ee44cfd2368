"""Torch twins of ``dropout_course``: the same module and function names, on the input's device.

Randomness comes from an explicit ``torch.Generator`` (whose device decides where masks are
drawn), a ``seed``, or an explicit ``mask``.
"""
