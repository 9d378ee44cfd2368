"""dropout_course: reference implementations for the course *Dropout, Hands-On*.

One module per concept, each in numpy (this package) and torch (``dropout_course.torch``) with
the same function names and semantics. ``p`` is always the probability of *dropping* a unit.
"""

__version__ = "0.1.0"
