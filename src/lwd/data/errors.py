"""The one exception type of the data layer.

It subclasses ``ValueError`` because every data problem is a bad *value* handed to us (a file, an
array, a horizon); callers that already catch ``ValueError`` keep working, while callers that want
to tell "your data is broken" apart from programming errors can catch ``DatasetError`` alone.
"""


class DatasetError(ValueError):
    """Raised when a dataset is malformed or does not fit what was asked of it.

    Messages name the offending key / episode / step and say what to change.
    """
