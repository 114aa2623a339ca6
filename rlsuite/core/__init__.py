"""The floor every layer stands on: the one error type for bad input and pure statistics of returns."""
